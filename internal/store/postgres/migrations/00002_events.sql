-- +goose Up
-- Analytic events, listed newest first by (ts, id) and kept until
-- retention deletes the oldest. The text columns are COLLATE "C": ids
-- order events within a millisecond byte by byte, as in SQLite, whatever
-- the database's locale.
CREATE TABLE events (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY, -- UUIDv7, assigned by the caller
    ts         timestamptz NOT NULL,                         -- whole milliseconds
    type       text        COLLATE "C" NOT NULL,
    category   text        COLLATE "C" NOT NULL,
    request_id text        COLLATE "C" NOT NULL,
    client_id  text        NOT NULL,
    metadata   text        NOT NULL -- compact JSON object, kept as given
);

-- Every index ends in (ts, id), the listing order: a listing filtered by
-- one value reads its index backwards from the Before position and stops
-- after a page, without sorting. events_ts also serves the unfiltered
-- listing, date ranges and retention.
CREATE INDEX events_ts ON events (ts, id);
CREATE INDEX events_type_ts ON events (type, ts, id);
CREATE INDEX events_category_ts ON events (category, ts, id);
CREATE INDEX events_request_ts ON events (request_id, ts, id);

-- +goose Down
DROP TABLE events;
