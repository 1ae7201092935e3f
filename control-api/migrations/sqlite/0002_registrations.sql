-- Softphone registrations (engine location service), kept so a restart
-- keeps them. One row per user; `bindings` is the JSON list of contacts.
CREATE TABLE registrations (
    username   TEXT PRIMARY KEY,
    bindings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
