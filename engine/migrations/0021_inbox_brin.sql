-- The inbox gets two rows per booking at the hot moment; its B-tree on processed_at cost an index
-- insertion each. Rows arrive in processed_at order, so a BRIN index (a summary per range of
-- table blocks, kept up to date almost for free) serves the retention sweep's "older than" scan.
DROP INDEX processed_messages_at_idx;
CREATE INDEX processed_messages_at_brin ON processed_messages USING brin (processed_at);
