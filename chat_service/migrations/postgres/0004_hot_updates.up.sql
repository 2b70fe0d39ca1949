-- Cheaper writes on the send path.

-- chat_members' primary key is (chat_id, user_id) already: the 0002 index repeated it, so
-- every member row written paid for two identical indexes.
DROP INDEX chat_members_chat_user_idx;

-- Rows every send updates: the chat's last_seq, its members' unread counts, each
-- recipient's pts counter. Room left on every page lets an update put the new row
-- version on the same page (a HOT update: no index entries written); with full pages a
-- quarter of the pts updates were not HOT. Applies to pages filled from now on.
ALTER TABLE chats SET (fillfactor = 80);
ALTER TABLE chat_members SET (fillfactor = 80);
ALTER TABLE user_pts SET (fillfactor = 50);
