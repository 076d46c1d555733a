-- The gazetteer: postcodes (OS Code-Point Open layout, any part of GB) and named places
-- (boroughs, wards, stations, landmarks). One resolver serves type-ahead, intake's
-- {address} and reverse lookup. PostGIS is not assumed: reverse lookup is a KNN on a core
-- `point` index over British National Grid metres, so `<->` is a distance in metres.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The key in the "C" collation: byte order is postcode order (SE1 7AA < SE1 7AB), and a
-- btree in "C" serves prefix ranges ("SE1 7" <= postcode < "SE1 8") as text_pattern_ops
-- would in another collation, so the primary key alone answers partial postcodes. Every
-- test clones a database holding this table: it keeps only what is read.
CREATE TABLE postcodes (
    postcode text COLLATE "C" PRIMARY KEY,          -- canonical: 'SE1 7PB'
    positional_quality smallint NOT NULL,
    easting integer NOT NULL,
    northing integer NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    district_code text,                              -- admin district (borough GSS code)
    ward_code text                                   -- the file's (2025) ward, informational
);
-- SP-GiST (quad tree) rather than GiST: the same KNN `<->` ordering, a quarter smaller.
CREATE INDEX postcodes_bng ON postcodes USING spgist (point(easting, northing));

-- What was loaded from where, so `cad seed-demo` can tell an absent or older copy of
-- the packaged London postcodes from the current one.
CREATE TABLE gazetteer_sources (
    source text PRIMARY KEY,
    version text NOT NULL,
    rows integer NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE places (
    key text PRIMARY KEY,                            -- 'station:waterloo', 'ward:E05000416'
    kind text NOT NULL CHECK (kind IN ('place', 'station', 'borough', 'ward')),
    name text NOT NULL,
    -- Normalised name and aliases: `terms` for exact matches, `search` (the same joined,
    -- "kings cross station | kings cross | kings x") for trigram matches.
    terms text[] NOT NULL,
    search text NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    area_code text,
    ward_code text,
    precision_m integer NOT NULL,
    source text NOT NULL
);
-- GiST, not GIN: it orders by trigram distance (KNN), so type-ahead needs no threshold.
CREATE INDEX places_search_trgm ON places USING gist (search gist_trgm_ops);
CREATE INDEX places_terms ON places USING gin (terms);
