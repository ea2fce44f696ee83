-- A snapshot's state is stored out of line and uncompressed (EXTERNAL) instead of compressed
-- (EXTENDED, PostgreSQL's default). The hot event's snapshot is one value of about 10 MB when it
-- holds 100,000 bookings, written every few tens of seconds under load; PostgreSQL's default
-- compression (pglz) took 130-160 ms of the backend's CPU per write, in one step, and stored
-- 4.4 MB; EXTERNAL took 30-50 ms and stores 10.1 MB (BENCHMARKS.md, "a snapshot's TOAST
-- compression", 2026-12-05). Only the latest snapshot of a stream is kept, so the extra bytes are
-- bounded, and reading an uncompressed one back costs no decompression. Rows written before keep
-- their compressed form and read as before. Safe to run twice.
ALTER TABLE snapshots ALTER COLUMN state SET STORAGE EXTERNAL;
