-- Accounts a force can run: sessions that can be ended, rotating refresh tokens, sign-in
-- lockout that holds without Redis, and the access log (who signed in, from where, who
-- read what). See docs/SECURITY.md for the model these tables carry.

ALTER TABLE users
    ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
    -- Seeded by `cad seed-demo`: refused at sign-in when CAD_ENV=production.
    ADD COLUMN demo boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- One row per sign-in. Access tokens name their session (`sid`); ending a session ends
-- every token of it, the refresh chain included.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Absolute end: a shift, whatever the refreshes.
    expires_at      timestamptz NOT NULL,
    last_refresh_at timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    ended_reason    text,
    address         text,
    user_agent      text
);
CREATE INDEX sessions_user_open ON sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;

-- Only a hash of each refresh token is kept. A token is spent when used; presenting a
-- spent one again means it was copied, and ends the whole session (the family).
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions(id),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- A locked sign-in name (scope 'account'). Kept in PostgreSQL whichever store counts the
-- failures, so a lockout survives Redis going away.
CREATE TABLE signin_locks (
    scope       text NOT NULL,
    key         text NOT NULL,
    locked_at   timestamptz NOT NULL DEFAULT now(),
    until       timestamptz NOT NULL,
    failures    integer NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The access audit: sign-ins (either outcome), sign-outs, lockouts, refresh reuse, admin
-- actions on accounts and reads of exports. Append-only; kept apart from the operational
-- event log, which consoles stream.
CREATE TABLE access_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('ok','failure','refused')),
    -- Who acted, as typed at sign-in (an unknown name too) and, when known, the account.
    username    text,
    user_id     bigint REFERENCES users(id),
    address     text,
    user_agent  text,
    -- What was acted on: an account's username, an incident's id.
    target      text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX access_log_at ON access_log (at);
CREATE INDEX access_log_user_at ON access_log (lower(username), at);
CREATE INDEX access_log_address_failures ON access_log (address, at)
    WHERE action = 'signin' AND outcome = 'failure';
