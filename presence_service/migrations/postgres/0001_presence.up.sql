-- Last-seen times and per-device delivered watermarks. Online state, typing and the
-- connection registry are ephemeral and live in Redis, never here.

-- Written when a user's last connection goes away.
CREATE TABLE last_seen (
    user_id          BIGINT PRIMARY KEY,
    last_seen_at_ms  BIGINT NOT NULL
);

-- The highest pts each device (auth session) has acknowledged, persisted in batches;
-- only ever moves forward (upserts keep the greater value).
CREATE TABLE delivered_watermarks (
    session_id     TEXT PRIMARY KEY,
    user_id        BIGINT NOT NULL,
    max_pts        BIGINT NOT NULL CHECK (max_pts >= 0),
    updated_at_ms  BIGINT NOT NULL
);

-- A user's devices, to tell a sender how far delivery has got.
CREATE INDEX delivered_watermarks_user_id_idx ON delivered_watermarks (user_id);
