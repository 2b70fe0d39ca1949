-- Every ack batch updates its devices' watermark rows: room left on every page lets an
-- update put the new row version on the same page (a HOT update: no index entries
-- written); with full pages half of them were not HOT. Applies to pages filled from now on.
ALTER TABLE delivered_watermarks SET (fillfactor = 50);
