DROP INDEX updates_date_idx;
DROP INDEX chat_members_chat_user_idx;
DROP TABLE chat_requests;
ALTER TABLE messages DROP COLUMN sender_pts;
ALTER TABLE chats DROP COLUMN last_activity_ms;
ALTER TABLE chat_members DROP COLUMN unread_count;
