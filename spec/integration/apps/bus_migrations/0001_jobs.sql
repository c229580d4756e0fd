-- the tables of spec/integration/apps/bus_app.lua
CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER);
-- one row per handler run, written in a transaction of its own (kept when the run fails)
CREATE TABLE runs (id TEXT NOT NULL, handler TEXT NOT NULL, attempt INTEGER NOT NULL, retry_count INTEGER,
  tenant TEXT);
-- handled by on_done: the message a handler published after its commit
CREATE TABLE done (id TEXT PRIMARY KEY);
-- the spec opens a gate by inserting its name
CREATE TABLE gates (name TEXT PRIMARY KEY);
