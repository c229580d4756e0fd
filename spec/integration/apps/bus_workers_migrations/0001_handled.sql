-- the tables of spec/integration/apps/bus_workers.lua
-- one row per handled delivery of "work.#": no key on purpose, so a message
-- handled twice shows as two rows
CREATE TABLE handled (id TEXT NOT NULL, n INTEGER NOT NULL, pid INTEGER NOT NULL);
-- the headers a "trace.#" message reached its handler with
CREATE TABLE seen (id TEXT NOT NULL, headers TEXT NOT NULL);
-- the "hold.#" deliveries that started
CREATE TABLE started (id TEXT NOT NULL, pid INTEGER NOT NULL);
-- the spec opens the hold handlers' gate by inserting name = 'open'
CREATE TABLE gates (name TEXT PRIMARY KEY);
