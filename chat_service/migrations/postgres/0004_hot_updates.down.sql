ALTER TABLE user_pts RESET (fillfactor);
ALTER TABLE chat_members RESET (fillfactor);
ALTER TABLE chats RESET (fillfactor);
CREATE INDEX chat_members_chat_user_idx ON chat_members (chat_id, user_id);
