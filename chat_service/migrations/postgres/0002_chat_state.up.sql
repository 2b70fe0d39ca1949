-- Counters and indexes the chat service keeps beside the 0001 tables.

-- The member's unread count, maintained by every write that changes it (send: +1 for
-- the other members; read: recomputed from the messages above the new watermark), so a
-- send fans out every recipient's unread_count from one UPDATE ... RETURNING instead of
-- one COUNT per member.
ALTER TABLE chat_members ADD COLUMN unread_count INTEGER NOT NULL DEFAULT 0;

-- A chat's last activity (created_at_ms, then the newest message's date_ms): the sort key
-- of ListChats, with the chat id as tie-breaker.
ALTER TABLE chats ADD COLUMN last_activity_ms BIGINT NOT NULL DEFAULT 0;

-- The sender's pts after the NewMessage of this message, so a retried send returns the
-- first attempt's result exactly.
ALTER TABLE messages ADD COLUMN sender_pts BIGINT NOT NULL DEFAULT 0;

-- Idempotency of CreateChat for groups (AIP-155): one row per (creator, request id), with
-- a fingerprint of the request's fields to tell a retry from a reuse.
CREATE TABLE chat_requests (
    user_id            BIGINT NOT NULL,
    client_request_id  TEXT NOT NULL,
    fingerprint        TEXT NOT NULL,
    chat_id            BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    created_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_request_id)
);

-- ListPeers walks the members of every chat of one user.
CREATE INDEX chat_members_chat_user_idx ON chat_members (chat_id, user_id);
-- Update-log trimming by age.
CREATE INDEX updates_date_idx ON updates (date_ms);
