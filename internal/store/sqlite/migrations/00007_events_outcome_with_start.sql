-- +goose Up
-- A START and its outcome (SUCCESS or FAIL) in one row: the row is the
-- START's, and outcome_id, outcome_type and outcome_metadata hold the
-- outcome, which shares the START's time, category, request and client.
-- Reads write both events through the asynchronous writer, mostly within
-- one millisecond: one row is written to three B-trees where two rows
-- were written to six (docs/performance.md has the
-- measurements).
--
-- The store pairs only an outcome whose id is the START's successor
-- (internal/ids.Next): no event sorts between the two, so listing the
-- row's outcome right before its START keeps the order by (ts, id).
-- outcome_type is '' in a row of one event.
ALTER TABLE events ADD COLUMN outcome_id TEXT;
ALTER TABLE events ADD COLUMN outcome_type TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN outcome_metadata TEXT;
-- The type index leads with (type, outcome_type), so that each listed
-- type is a few equality ranges, each ordered by (ts, id): the STARTs
-- are (START type, any outcome_type); the outcomes of a type, rows of
-- their own (type, '') and rows of their START (START type, type). UNIQUE,
-- as before, tells the planner (ts, id) orders each range (see 00002).
DROP INDEX events_type_ts;
CREATE UNIQUE INDEX events_type_ts ON events (type, outcome_type, ts, id);

-- +goose Down
INSERT INTO events (id, ts, type, category, request_id, client_id, metadata, ts_in_id)
    SELECT outcome_id, ts, outcome_type, category, request_id, client_id, outcome_metadata, ts_in_id
    FROM events WHERE outcome_type != '';
DROP INDEX events_type_ts;
ALTER TABLE events DROP COLUMN outcome_metadata;
ALTER TABLE events DROP COLUMN outcome_type;
ALTER TABLE events DROP COLUMN outcome_id;
CREATE UNIQUE INDEX events_type_ts ON events (type, ts, id);
