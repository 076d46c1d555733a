-- Partner subscriptions: every change of a matching incident delivered to a partner's URL
-- as a signed EIDO POST, at least once and in order per incident, from an outbox that
-- the event log fills. The cursors and the outbox are here, so deliveries resume after
-- any restart or change of leader; Redis plays no part.

CREATE TABLE subscriptions (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    url             text NOT NULL,
    secret          text NOT NULL,
    -- Empty: no filter on that dimension.
    areas           text[] NOT NULL DEFAULT '{}',
    grades          text[] NOT NULL DEFAULT '{}',
    types           text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    ended_at        timestamptz,
    -- The last event seq the outbox has looked at for this subscription.
    cursor_seq      bigint NOT NULL,
    last_delivered_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    delivered       bigint NOT NULL DEFAULT 0
);

-- One row per (subscription, change of an incident): the document as it stood when the
-- change was taken, sent until the partner answers 2xx.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES subscriptions(id),
    incident_id     bigint NOT NULL REFERENCES incidents(id),
    event_seq       bigint NOT NULL,
    event_at        timestamptz NOT NULL,
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text,
    UNIQUE (subscription_id, event_seq)
);
-- The next delivery of each incident for each subscription: the oldest undelivered.
CREATE INDEX deliveries_pending ON deliveries (subscription_id, incident_id, event_seq)
    WHERE delivered_at IS NULL;
