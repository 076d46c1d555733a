-- Area sets come in levels: 'borough' (response areas) and 'ward' (sectors within them).
-- One active set per level, so importing wards never deactivates the boroughs.
ALTER TABLE area_sets ADD COLUMN level text NOT NULL DEFAULT 'borough'
    CHECK (level IN ('borough', 'ward'));
DROP INDEX area_sets_one_active;
CREATE UNIQUE INDEX area_sets_one_active ON area_sets (level) WHERE active;
