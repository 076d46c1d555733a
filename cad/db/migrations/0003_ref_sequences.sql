-- Incident reference numbers from one sequence per day instead of a counter row: a
-- counter row is locked from the first incident insert until commit, which made every
-- intake transaction wait for the one before it. Sequences never wait; numbers stay
-- unique per day (a rolled-back call leaves a gap, which control rooms accept).
CREATE FUNCTION incident_ref_next(day date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    seqname text := 'incident_ref_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(seqname) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', seqname);
        EXCEPTION WHEN unique_violation OR duplicate_table THEN
            NULL;  -- another transaction created it first
        END;
    END IF;
    RETURN nextval(seqname);
END $$;

-- Carry today's numbering over from the counter table, so no reference is handed out twice.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT day, last_no FROM incident_ref_counters LOOP
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I START %s',
                       'incident_ref_' || to_char(r.day, 'YYYYMMDD'), r.last_no + 1);
    END LOOP;
END $$;

DROP TABLE incident_ref_counters;
