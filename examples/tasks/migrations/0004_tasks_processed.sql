-- Whether the TaskWorker (app.lua, `jararaca worker`) has processed the
-- task: POST /tasks publishes "task" after its commit, the worker sets this.
-- Existing tasks were never published: they stay unprocessed.
ALTER TABLE tasks ADD COLUMN processed INTEGER NOT NULL DEFAULT 0 CHECK (processed IN (0, 1));
