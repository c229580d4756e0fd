-- The list sorts by created_at (newest first, the default) or by name; each
-- sort gets the index that serves it, so a page is read from the index
-- instead of sorting the table (the table is WITHOUT ROWID: each index
-- entry ends with the id, the tie-breaker of the order).
CREATE INDEX tasks_name ON tasks (name);
