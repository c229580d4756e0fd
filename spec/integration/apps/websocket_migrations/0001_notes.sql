-- the notes of spec/integration/apps/websocket.lua
CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
