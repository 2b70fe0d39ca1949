-- Same as the PostgreSQL migration; see its comments. SQLite's lower() folds ASCII only,
-- so the backfill key equals the service's for ASCII addresses. SQLite cannot add a NOT
-- NULL column without a default: the default '' is never used (every INSERT sets the key)
-- and the UPDATE fills every existing row before the unique index is built.
ALTER TABLE users ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
UPDATE users SET email_key = lower(email);
CREATE UNIQUE INDEX users_email_key_idx ON users (email_key);
