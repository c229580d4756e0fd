-- The tasks table of the seed's tasks app.
CREATE TABLE tasks (
  id         TEXT PRIMARY KEY,      -- uuid4, lower-case
  name       TEXT NOT NULL,
  done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
  created_at TEXT NOT NULL,         -- RFC 3339, UTC
  updated_at TEXT NOT NULL
);
CREATE INDEX tasks_created_at ON tasks (created_at);
