DROP TABLE delivered_watermarks;
DROP TABLE last_seen;
