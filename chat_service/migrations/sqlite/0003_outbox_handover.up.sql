-- Outbox rows the writing process publishes itself right after its commit (the send
-- path): relays leave such a row alone until it is a few seconds old, then publish it if
-- its writer never marked it published (a crash, a broker outage).
ALTER TABLE outbox ADD COLUMN handed_over INTEGER NOT NULL DEFAULT 0;
