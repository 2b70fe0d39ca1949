-- Chats, membership, messages, the per-user update log and the fan-out outbox.
-- Same tables as the PostgreSQL schema; see its comments for the reasons.
-- AUTOINCREMENT: like a PostgreSQL identity, never hands out an id again after a delete
-- (clients drop a message whose id they have seen as a duplicate).

CREATE TABLE chats (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),  -- 1 direct, 2 group
    title          TEXT NOT NULL DEFAULT '',
    direct_key     TEXT UNIQUE,
    created_by     INTEGER NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    member_count   INTEGER NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    CHECK ((kind = 1) = (direct_key IS NOT NULL))
);

CREATE TABLE chat_members (
    chat_id         INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL,
    role            INTEGER NOT NULL CHECK (role IN (1, 2, 3)),  -- 1 owner, 2 admin, 3 member
    joined_at_ms    INTEGER NOT NULL,
    read_inbox_seq  INTEGER NOT NULL DEFAULT 0 CHECK (read_inbox_seq >= 0),
    PRIMARY KEY (chat_id, user_id)
);

CREATE INDEX chat_members_user_id_idx ON chat_members (user_id);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id          INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL CHECK (seq > 0),
    sender_id        INTEGER NOT NULL,
    client_msg_id    TEXT NOT NULL,
    body_kind        INTEGER NOT NULL,
    body_text        TEXT,
    body_header      BLOB,
    body_ciphertext  BLOB,
    date_ms          INTEGER NOT NULL,
    edited_at_ms     INTEGER,
    deleted_at_ms    INTEGER,
    UNIQUE (chat_id, seq),
    UNIQUE (sender_id, client_msg_id)
);

CREATE TABLE message_hidden (
    user_id     INTEGER NOT NULL,
    chat_id     INTEGER NOT NULL,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, message_id)
);

CREATE TABLE user_pts (
    user_id  INTEGER PRIMARY KEY,
    pts      INTEGER NOT NULL DEFAULT 0 CHECK (pts >= 0)
);

CREATE TABLE updates (
    user_id    INTEGER NOT NULL,
    pts        INTEGER NOT NULL,
    pts_count  INTEGER NOT NULL CHECK (pts_count >= 0),
    kind       INTEGER NOT NULL,
    chat_id    INTEGER,
    payload    BLOB NOT NULL,
    date_ms    INTEGER NOT NULL,
    PRIMARY KEY (user_id, pts)
);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    payload          BLOB NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    published_at_ms  INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at_ms IS NULL;
