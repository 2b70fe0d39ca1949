DROP TABLE outbox;
DROP TABLE updates;
DROP TABLE user_pts;
DROP TABLE message_hidden;
DROP TABLE messages;
DROP TABLE chat_members;
DROP TABLE chats;
