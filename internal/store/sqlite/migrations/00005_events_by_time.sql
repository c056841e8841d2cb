-- +goose Up
-- Events keyed by their listing order, (ts, id), in a WITHOUT ROWID
-- table: the rows themselves are the time index, so an event is stored in
-- four B-trees instead of six (no rowid table beside events_ts, and no
-- category index). Every read and every mutation writes two events, and
-- their inserts were the largest part of a request's SQLite time.
--
-- Category is no longer indexed: the service records a single category
-- and decides a category filter itself; the store has none.
--
-- A secondary index of a WITHOUT ROWID table ends in the primary key
-- anyway; naming (ts, id) says the order the listings rely on, and UNIQUE
-- on the type index still tells the planner that (ts, id) orders its
-- entries completely (see 00002).
CREATE TABLE events_by_time (
    ts         INTEGER NOT NULL, -- unix milliseconds, UTC
    id         TEXT    NOT NULL, -- UUIDv7, assigned by the caller
    type       TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    metadata   TEXT    NOT NULL, -- compact JSON object, as given
    PRIMARY KEY (ts, id)
) STRICT, WITHOUT ROWID;
INSERT INTO events_by_time (ts, id, type, category, request_id, client_id, metadata)
    SELECT ts, id, type, category, request_id, client_id, metadata FROM events;
DROP TABLE events;
ALTER TABLE events_by_time RENAME TO events;
-- An event id is unique: the START of a mutation is written both with the
-- mutation and by the asynchronous writer, and the second is skipped on it.
CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_type_ts ON events (type, ts, id);
CREATE INDEX events_request_ts ON events (request_id, ts, id);

-- +goose Down
CREATE TABLE events_by_rowid (
    id         TEXT    NOT NULL PRIMARY KEY,
    ts         INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    metadata   TEXT    NOT NULL
) STRICT;
INSERT INTO events_by_rowid (id, ts, type, category, request_id, client_id, metadata)
    SELECT id, ts, type, category, request_id, client_id, metadata FROM events ORDER BY ts, id;
DROP TABLE events;
ALTER TABLE events_by_rowid RENAME TO events;
CREATE INDEX events_ts ON events (ts, id);
CREATE UNIQUE INDEX events_type_ts ON events (type, ts, id);
CREATE UNIQUE INDEX events_category_ts ON events (category, ts, id);
CREATE INDEX events_request_ts ON events (request_id, ts, id);
