-- A hold's row in the catalog keeps only its tiers: whether a freed hold's tickets were held or
-- confirmed follows from the event that frees them (a release or an expiry frees held tickets, a
-- cancellation confirmed ones: the entity allows no other move), so a confirmation no longer
-- rewrites the hold's row, one row update per booking fewer at the hot moment.
ALTER TABLE catalog_event_holds DROP COLUMN status;
