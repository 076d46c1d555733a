-- Retrieval: search over incidents, their calls and remarks; location and caller history
-- at intake; warning markers. Every per-query read is bounded by an index so a lookup
-- costs the same with a million incidents on the record as with a hundred.

-- A phone number as a key: digits only, +44 / 0044 read as the national 0, so
-- "+44 7700 900000", "07700 900000" and "(07700) 900-000" are one caller.
CREATE FUNCTION cad_phone_key(phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN d LIKE '00440%' THEN substr(d, 5)
        WHEN d LIKE '0044%' THEN '0' || substr(d, 5)
        WHEN d LIKE '440%' AND length(d) > 11 THEN substr(d, 3)
        WHEN d LIKE '44%' AND length(d) > 10 THEN '0' || substr(d, 3)
        ELSE d END
    FROM (SELECT regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') AS d) s
$$;

-- The searchable text of an incident, weighted: what it is and its reference (A), where
-- (B), what was said (C), who called (D). Intake and the bench's history builder both
-- call this, so the record and the benchmark index the same words.
CREATE FUNCTION cad_search_doc(ref text, type_name text, place text, description text,
                               people text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('english', coalesce(ref, '') || ' ' || coalesce(type_name, '')), 'A')
        || setweight(to_tsvector('english', coalesce(place, '')), 'B')
        || setweight(to_tsvector('english', coalesce(description, '')), 'C')
        || setweight(to_tsvector('english', coalesce(people, '')), 'D')
$$;

ALTER TABLE incidents
    ADD COLUMN postcode text COLLATE "C",      -- the resolved or nearest postcode
    ADD COLUMN search_tsv tsvector NOT NULL DEFAULT ''::tsvector;

ALTER TABLE calls
    ADD COLUMN postcode text COLLATE "C",
    ADD COLUMN phone_key text GENERATED ALWAYS AS (cad_phone_key(caller_phone)) STORED;

-- Existing incidents become searchable with what they hold (type names are the codes
-- here; new incidents index the catalogue's names).
UPDATE incidents i SET search_tsv = cad_search_doc(
    i.ref, replace(i.type_code, '_', ' '),
    concat_ws(' ', i.address, i.location_label, i.address_line),
    i.description,
    (SELECT string_agg(c.caller_name, ' ') FROM calls c WHERE c.incident_id = i.id));

-- Free text: GIN over the weighted document.
CREATE INDEX incidents_search_idx ON incidents USING gin (search_tsv);
-- Newest first, keyset-paged on (created_at, id); replaces the plain created_at index.
DROP INDEX incidents_created_idx;
CREATE INDEX incidents_created_id_idx ON incidents (created_at, id);
-- Near a point in a time window, any status: history at intake, search's `near`, and the
-- duplicate search (open incidents of the last hour), which used a partial index of its
-- own: one GiST index fewer to write per call, and the rows read stay bounded by place
-- and time together (tests/surge).
CREATE INDEX incidents_near_idx ON incidents USING gist (point(lng, lat), created_at);
DROP INDEX incidents_open_near_idx;
-- Postcode and ward lookups, newest first within each.
CREATE INDEX incidents_postcode_idx ON incidents (postcode, created_at, id)
    WHERE postcode IS NOT NULL;
CREATE INDEX incidents_ward_idx ON incidents (ward_code, created_at, id)
    WHERE ward_code IS NOT NULL;
-- Calls from one phone, newest first: repeat-caller history and search's `phone`.
CREATE INDEX calls_phone_idx ON calls (phone_key, created_at) WHERE phone_key <> '';
-- Incidents a unit attended: search's `unit`.
CREATE INDEX assignments_unit_idx ON assignments (unit_id, incident_id);

-- Warning markers: a point with a radius, a postcode, or a phone number, each with a
-- category from the catalogue (cad/markers/categories.json). Rows are never deleted: an
-- expired marker stops matching and stays for audit; every change is an event.
CREATE TABLE markers (
    id          bigserial PRIMARY KEY,
    category    text NOT NULL,
    text        text NOT NULL,
    lat         double precision,
    lng         double precision,
    radius_m    integer CHECK (radius_m BETWEEN 1 AND 1000),
    postcode    text COLLATE "C",
    phone       text,
    phone_key   text,
    author      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    review_at   date NOT NULL,
    expires_at  timestamptz,
    CHECK (num_nonnulls(lat, postcode, phone_key) = 1),
    CHECK ((lat IS NULL) = (lng IS NULL) AND (lat IS NULL) = (radius_m IS NULL)),
    CHECK ((phone IS NULL) = (phone_key IS NULL))
);
CREATE INDEX markers_point_idx ON markers USING gist (point(lng, lat)) WHERE lat IS NOT NULL;
CREATE INDEX markers_postcode_idx ON markers (postcode) WHERE postcode IS NOT NULL;
CREATE INDEX markers_phone_idx ON markers (phone_key) WHERE phone_key IS NOT NULL;
