-- Place on the record: what the handler typed stays in `address`; what it resolved to,
-- how precise that is, the ward (sector) and the readable line every console shows
-- ("SE1 7PB · Bishop's · Lambeth", "near SE1 7PB · …" for a handset fix) sit beside it.
ALTER TABLE incidents
    ADD COLUMN location_label text,
    ADD COLUMN precision_m    integer,
    ADD COLUMN ward_code      text,
    ADD COLUMN address_line   text;
ALTER TABLE calls
    ADD COLUMN location_label text,
    ADD COLUMN precision_m    integer,
    ADD COLUMN ward_code      text;

-- The duplicate search at intake reads open incidents near the call within the last
-- hour. A btree on time alone read every incident of the window (51,927 rows to keep 50 in
-- a surge); this GiST index bounds the rows read by place AND time together, so a call
-- costs the same with 50,000 incidents in the last hour as with none.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX incidents_open_near_idx ON incidents
    USING gist (point(lng, lat), created_at)
    WHERE status <> 'closed' AND merged_into IS NULL;

-- The board pages through open incidents by id.
CREATE INDEX incidents_open_id_idx ON incidents (id) WHERE status <> 'closed';
