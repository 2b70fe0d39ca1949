-- One account per address on every engine: uniqueness moves to email_key, which the auth
-- service computes (auth_service.domain.accounts.email_key: NFC, Unicode case folding), so
-- PostgreSQL (citext: lower() of the database's locale) and SQLite (NOCASE: ASCII only)
-- stop disagreeing about which addresses are the same.
--
-- Backfill: SQL can only lower(). For every ASCII address that is exactly the key the
-- service computes; a non-ASCII address written before this migration whose lower() and
-- case folding differ (e.g. "ß", which folds to "ss") keeps lower() as its key and is
-- found only as typed in that form. The old UNIQUE on email stays: the key folds at least
-- as much as citext does, so it never refuses an address the key would accept as new,
-- and keeping it spares a table rewrite.
ALTER TABLE users ADD COLUMN email_key TEXT;
UPDATE users SET email_key = lower(email::text);
ALTER TABLE users ALTER COLUMN email_key SET NOT NULL;
CREATE UNIQUE INDEX users_email_key_idx ON users (email_key);
