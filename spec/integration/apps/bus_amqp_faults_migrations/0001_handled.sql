-- the tables of spec/integration/apps/bus_amqp_faults.lua
-- one row per distinct message handled; runs: how many times a handler committed it (duplicates > 1)
CREATE TABLE handled (id TEXT PRIMARY KEY, runs INTEGER NOT NULL, pid INTEGER NOT NULL);
-- one row per run of the "hang" and "later" handlers, in a transaction of its own (kept when the process dies)
CREATE TABLE runs (id TEXT NOT NULL, pid INTEGER NOT NULL, attempt INTEGER NOT NULL);
