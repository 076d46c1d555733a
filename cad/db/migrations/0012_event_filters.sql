-- Consoles subscribe to part of the stream (areas, grades, kinds of event). What an event
-- concerns is recorded with it when it is written, so that whether it matches a filter
-- depends on the event alone: the live stream and catch-up from the log give exactly the
-- same set, however the incident or the unit changed since.
--
-- areas: the incident's area_code and the unit's home area_code, distinct, nulls removed
--        (empty for an event about neither); grade: the incident's grade at write time.
-- Rows written before this migration keep NULL in both, which every filter matches: the
-- log is append-only (no backfill), and a console must never lose an old event to a filter.
ALTER TABLE events ADD COLUMN areas text[], ADD COLUMN grade text;
