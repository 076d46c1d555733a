-- Core schema: the record of every call, incident, unit and assignment, and the
-- append-only event log that is both the legal record and the consoles' feed.

CREATE TABLE units (
    id              bigserial PRIMARY KEY,
    callsign        text NOT NULL UNIQUE,
    unit_type       text NOT NULL,
    capabilities    text[] NOT NULL DEFAULT '{}',
    home_station    text,
    area_code       text,
    status          text NOT NULL DEFAULT 'off_duty'
        CHECK (status IN ('off_duty','available','dispatched','en_route','on_scene','unavailable')),
    lat             double precision,
    lng             double precision,
    position_at     timestamptz,
    status_at       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    role            text NOT NULL
        CHECK (role IN ('call_handler','dispatcher','supervisor','unit','admin')),
    unit_id         bigint REFERENCES units(id),
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'unit') = (unit_id IS NOT NULL))
);

-- One row per day hands out the number part of "CAD 1234/26NOV26".
CREATE TABLE incident_ref_counters (
    day     date PRIMARY KEY,
    last_no integer NOT NULL
);

CREATE TABLE incidents (
    id                  bigserial PRIMARY KEY,
    ref                 text NOT NULL UNIQUE,
    type_code           text NOT NULL,
    grade               text NOT NULL,
    grade_rule          text NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending','dispatched','on_scene','closed')),
    lat                 double precision NOT NULL,
    lng                 double precision NOT NULL,
    address             text,
    area_code           text,
    description         text NOT NULL DEFAULT '',
    risk                jsonb NOT NULL DEFAULT '{}',
    call_received_at    timestamptz NOT NULL,
    call_answered_at    timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    target_at           timestamptz,
    first_assigned_at   timestamptz,
    first_on_scene_at   timestamptz,
    closed_at           timestamptz,
    result_code         text,
    merged_into         bigint REFERENCES incidents(id),
    created_by          bigint REFERENCES users(id),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_open_idx ON incidents (status, grade, created_at) WHERE status <> 'closed';
CREATE INDEX incidents_created_idx ON incidents (created_at);

-- A call is not an incident: many callers, one incident; some calls make none.
CREATE TABLE calls (
    id                  bigserial PRIMARY KEY,
    incident_id         bigint REFERENCES incidents(id),
    outcome             text NOT NULL
        CHECK (outcome IN ('incident_created','attached','advice','hoax','accidental','other')),
    caller_name         text,
    caller_phone        text,
    location_source     text NOT NULL,
    lat                 double precision NOT NULL,
    lng                 double precision NOT NULL,
    address             text,
    area_code           text,
    type_code           text NOT NULL,
    description         text NOT NULL DEFAULT '',
    risk                jsonb NOT NULL DEFAULT '{}',
    received_at         timestamptz NOT NULL,
    answered_at         timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    handler_id          bigint REFERENCES users(id)
);
CREATE INDEX calls_incident_idx ON calls (incident_id);

-- Timestamps per assignment, not per unit: a unit's history on a closed job stays visible.
CREATE TABLE assignments (
    id                  bigserial PRIMARY KEY,
    incident_id         bigint NOT NULL REFERENCES incidents(id),
    unit_id             bigint NOT NULL REFERENCES units(id),
    status              text NOT NULL DEFAULT 'dispatched'
        CHECK (status IN ('dispatched','en_route','on_scene','cleared','cancelled')),
    auto                boolean NOT NULL DEFAULT false,
    dispatched_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at     timestamptz,
    en_route_at         timestamptz,
    on_scene_at         timestamptz,
    cleared_at          timestamptz,
    cleared_reason      text,
    assigned_by         text NOT NULL
);
-- One unit, one job, enforced by the database itself as the last line of defence.
CREATE UNIQUE INDEX assignments_one_open_per_unit ON assignments (unit_id)
    WHERE status IN ('dispatched','en_route','on_scene');
CREATE INDEX assignments_incident_idx ON assignments (incident_id);

-- The append-only event log. seq order is commit order: writers take a transaction-scoped
-- advisory lock before drawing seq (see cad/events/writer.py).
CREATE TABLE events (
    seq         bigint PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    type        text NOT NULL,
    incident_id bigint,
    unit_id     bigint,
    actor       text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE SEQUENCE events_seq_seq OWNED BY events.seq;
CREATE INDEX events_incident_idx ON events (incident_id, seq) WHERE incident_id IS NOT NULL;

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- The first answer to a command, replayed for retries with the same Idempotency-Key.
CREATE TABLE idempotency_keys (
    user_id         bigint NOT NULL,
    key             text NOT NULL,
    route           text NOT NULL,
    request_hash    text NOT NULL,
    status_code     integer NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Response areas (boroughs/sectors) and the service area, replaced by `cad areas import`.
CREATE TABLE area_sets (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    geojson     jsonb NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    active      boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX area_sets_one_active ON area_sets (active) WHERE active;

-- Alarms raised by the safety timers; worked by one elected process.
CREATE TABLE alarms (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    incident_id bigint REFERENCES incidents(id),
    unit_id     bigint REFERENCES units(id),
    assignment_id bigint REFERENCES assignments(id),
    raised_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz,
    message     text NOT NULL
);
CREATE UNIQUE INDEX alarms_one_open ON alarms (kind, coalesce(incident_id, 0), coalesce(unit_id, 0))
    WHERE cleared_at IS NULL;
