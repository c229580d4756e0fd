CREATE INDEX tasks_name ON tasks (name);
