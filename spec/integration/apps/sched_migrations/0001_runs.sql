-- the tables of spec/integration/apps/sched.lua
-- one row per run of an action that got to write: no key on purpose, so a
-- tick run twice shows as two rows
CREATE TABLE runs (action TEXT NOT NULL, tick INTEGER NOT NULL, fired_at REAL NOT NULL, token INTEGER,
  pid INTEGER NOT NULL);
-- the runs that started (a transaction of their own: kept when the run fails)
CREATE TABLE started (action TEXT NOT NULL, tick INTEGER NOT NULL, pid INTEGER NOT NULL);
-- what the exception handlers saw
CREATE TABLE errors (action TEXT NOT NULL, tick INTEGER NOT NULL, err TEXT NOT NULL);
-- what the interceptor saw: one row per transaction it entered
CREATE TABLE intercepted (action TEXT NOT NULL, tick INTEGER NOT NULL, kind TEXT NOT NULL);
-- a deferred foreign key, checked at COMMIT: a run inserting an orphan
-- passes the statement and fails its commit
CREATE TABLE parents (id INTEGER PRIMARY KEY);
CREATE TABLE orphans (parent INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
