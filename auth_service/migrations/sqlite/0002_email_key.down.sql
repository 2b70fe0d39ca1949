DROP INDEX users_email_key_idx;
ALTER TABLE users DROP COLUMN email_key;
