ALTER TABLE delivered_watermarks RESET (fillfactor);
