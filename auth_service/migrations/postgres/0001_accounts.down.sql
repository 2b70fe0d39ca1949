-- The citext extension stays: it is shared by the whole database (see the up file).
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
