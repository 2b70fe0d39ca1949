-- Last-seen times and per-device delivered watermarks.
-- Same tables as the PostgreSQL schema; see its comments for the reasons.
-- NOT NULL on every PRIMARY KEY: SQLite otherwise lets a non-INTEGER key be NULL.

CREATE TABLE last_seen (
    user_id          INTEGER PRIMARY KEY,
    last_seen_at_ms  INTEGER NOT NULL
);

CREATE TABLE delivered_watermarks (
    session_id     TEXT NOT NULL PRIMARY KEY,
    user_id        INTEGER NOT NULL,
    max_pts        INTEGER NOT NULL CHECK (max_pts >= 0),
    updated_at_ms  INTEGER NOT NULL
);

CREATE INDEX delivered_watermarks_user_id_idx ON delivered_watermarks (user_id);
