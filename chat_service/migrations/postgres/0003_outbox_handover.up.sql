-- Outbox rows the writing process publishes itself right after its commit (the send
-- path): the relays of other processes leave such a row alone until it is a few seconds
-- old, so it is published once, not raced for; if its writer never marks it published
-- (a crash, a broker outage), any relay publishes it after that grace.
ALTER TABLE outbox ADD COLUMN handed_over BOOLEAN NOT NULL DEFAULT FALSE;
