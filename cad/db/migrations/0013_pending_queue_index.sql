-- The engine reads the most urgent, oldest open incidents of its grades on every pass.
-- Under a surge thousands are pending; reading them all to keep 500 cost tens of ms a
-- pass on the leader. This index hands each grade's oldest open incidents out in order.
-- Its predicate names the open statuses rather than "status <> 'closed'", so the
-- duplicate search (which says the latter) keeps its GiST index instead of this one.
CREATE INDEX incidents_queue_idx ON incidents (grade, created_at, id)
    WHERE status IN ('pending', 'dispatched', 'on_scene') AND merged_into IS NULL;
