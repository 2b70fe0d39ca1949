-- chat_members' primary key is (chat_id, user_id) already: the 0002 index repeated it.
-- (PostgreSQL's 0004 also leaves room on the pages of rows every send updates; SQLite
-- has no such setting.)
DROP INDEX chat_members_chat_user_idx;
