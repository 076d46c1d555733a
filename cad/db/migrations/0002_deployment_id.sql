-- Identifies this database in Redis keys, so a database that is recreated (or another
-- database sharing a Redis prefix) never reads a stream of events that are not its own.
CREATE TABLE deployment (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    singleton   boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
INSERT INTO deployment DEFAULT VALUES;
