-- +goose Up
-- seq is AUTOINCREMENT so a deleted user's seq is never handed out again:
-- it is the keyset pagination key, and a reused value would let a cursor
-- skip or repeat users.
CREATE TABLE users (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    claims       TEXT    NOT NULL,
    provider_id  TEXT,
    provider_url TEXT,
    subject_id   TEXT,
    created_at   INTEGER NOT NULL, -- unix milliseconds, UTC
    updated_at   INTEGER NOT NULL, -- unix milliseconds, UTC
    CHECK ((provider_id IS NULL) = (provider_url IS NULL)
       AND (provider_id IS NULL) = (subject_id IS NULL))
) STRICT;

-- Decides provider link conflicts. NULLs are distinct in a SQLite unique
-- index, so any number of unlinked users coexist.
CREATE UNIQUE INDEX users_provider_subject_uq ON users (provider_id, subject_id);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- +goose Down
DROP TABLE settings;
DROP INDEX users_provider_subject_uq;
DROP TABLE users;
