ALTER TABLE outbox DROP COLUMN handed_over;
