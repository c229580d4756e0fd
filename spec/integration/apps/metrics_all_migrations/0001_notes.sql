-- the table of spec/integration/apps/metrics_all.lua
CREATE TABLE notes (what TEXT NOT NULL, pid INTEGER NOT NULL);
