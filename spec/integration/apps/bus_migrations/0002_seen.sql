-- what the handlers of typed messages and of propagated headers saw (spec/integration/bus_spec.lua)
CREATE TABLE seen (id TEXT NOT NULL, handler TEXT NOT NULL, value TEXT NOT NULL);
