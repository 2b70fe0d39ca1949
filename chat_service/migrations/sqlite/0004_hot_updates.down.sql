CREATE INDEX chat_members_chat_user_idx ON chat_members (chat_id, user_id);
