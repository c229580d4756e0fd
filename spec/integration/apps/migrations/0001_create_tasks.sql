-- tasks and their notes (a deferred foreign key: checked at COMMIT)
CREATE TABLE tasks (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL
);
CREATE TABLE notes (
  id      INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
  text    TEXT
);
