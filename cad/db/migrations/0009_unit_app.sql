-- The officer's side: the emergency button, and alarms a person must acknowledge.

-- One row per press of a unit's emergency button. The incident it raised and the alarm
-- stay in the record when the officer cancels.
CREATE TABLE emergencies (
    id              bigserial PRIMARY KEY,
    unit_id         bigint NOT NULL REFERENCES units(id),
    incident_id     bigint NOT NULL REFERENCES incidents(id),
    pressed_by      text NOT NULL,
    pressed_at      timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    lat             double precision NOT NULL,
    lng             double precision NOT NULL,
    -- When the position it was raised at was taken (its age is shown to dispatchers).
    position_at     timestamptz,
    cancelled_at    timestamptz,
    cancelled_by    text,
    cancel_reason   text
);
-- A second press (a retry, a double press) while one is open is the same emergency.
CREATE UNIQUE INDEX emergencies_one_open_per_unit ON emergencies (unit_id)
    WHERE cancelled_at IS NULL;

-- Who acknowledged an alarm that waits for a person (an officer's emergency).
ALTER TABLE alarms ADD COLUMN cleared_by text;
