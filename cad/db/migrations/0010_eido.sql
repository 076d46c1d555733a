-- CAD-to-CAD exchange (NENA EIDO): partner agencies as a role, and the documents taken in.

-- A partner is a machine client of another agency (an ambulance service, a fire service,
-- a neighbouring force): it exchanges EIDO documents and nothing else.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('call_handler','dispatcher','supervisor','unit','admin','partner'));

-- Every EIDO document applied, keyed by what makes a resend the same document: its $id
-- and lastUpdateTimeStamp as sent. The incident it created or updated, and whose it is.
CREATE TABLE eido_documents (
    eido_id             text NOT NULL,
    last_update         text NOT NULL,
    incident_id         bigint NOT NULL REFERENCES incidents(id),
    source_agency       text NOT NULL,
    source_incident_id  text,
    created_incident    boolean NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (eido_id, last_update)
);
CREATE INDEX eido_documents_incident ON eido_documents (eido_id, received_at);

-- Partner notes already taken in as remarks (an update resends the earlier ones).
CREATE TABLE eido_notes_seen (
    incident_id bigint NOT NULL REFERENCES incidents(id),
    note_id     text NOT NULL,
    PRIMARY KEY (incident_id, note_id)
);
