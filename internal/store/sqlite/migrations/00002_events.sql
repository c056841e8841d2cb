-- +goose Up
-- Analytic events. They are listed newest first by (ts, id) and kept
-- until retention deletes the oldest.
--
-- Keyed by the caller's UUIDv7 text in a rowid table, not by an explicit
-- INTEGER key with a UNIQUE id: that would be the same two B-trees (rows
-- by rowid, an index on id), only with a rowid nothing else refers to.
-- The rowid table keeps rows in insertion order, which is roughly time
-- order, so inserts append and every index finds its row by a short
-- integer.
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY, -- UUIDv7, assigned by the caller
    ts         INTEGER NOT NULL,             -- unix milliseconds, UTC
    type       TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    metadata   TEXT    NOT NULL              -- compact JSON object, as given
) STRICT;

-- Every index ends in (ts, id), the listing order: a listing filtered by
-- one value reads its index backwards from the Before position and stops
-- after a page, without sorting, however many events match. events_ts
-- also serves the unfiltered listing, date ranges and retention.
--
-- The type and category indexes are UNIQUE, which they are anyway since
-- id is. It tells the planner that (ts, id) orders events completely, so
-- the UNION of one branch per listed type and category merges the
-- branches' ordered streams instead of sorting every matching event.
CREATE INDEX events_ts ON events (ts, id);
CREATE UNIQUE INDEX events_type_ts ON events (type, ts, id);
CREATE UNIQUE INDEX events_category_ts ON events (category, ts, id);
CREATE INDEX events_request_ts ON events (request_id, ts, id);

-- +goose Down
DROP TABLE events;
