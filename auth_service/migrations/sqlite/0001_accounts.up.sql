-- Accounts, sessions (one per signed-in device) and refresh tokens.
-- Same tables as the PostgreSQL schema; see its comments for the reasons.
-- AUTOINCREMENT: like a PostgreSQL identity, never hands out an id again after a delete
-- (a reused user id would match tokens issued to a deleted account).
-- NOT NULL on every PRIMARY KEY: SQLite otherwise lets a non-INTEGER key be NULL.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NOCASE folds ASCII letters only; citext also folds non-ASCII ones.
    email           TEXT COLLATE NOCASE NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL
);

CREATE TABLE sessions (
    id               TEXT NOT NULL PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name      TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    last_used_at_ms  INTEGER NOT NULL,
    revoked_at_ms    INTEGER,
    revoke_reason    TEXT
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash     BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id     TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation     INTEGER NOT NULL,
    issued_at_ms   INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    rotated_at_ms  INTEGER,
    UNIQUE (session_id, generation)
);
