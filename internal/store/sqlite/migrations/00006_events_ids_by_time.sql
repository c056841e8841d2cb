-- +goose Up
-- An event whose id is a UUIDv7 carrying its ts (every event the service
-- makes since this version) is found by id through its key: (ts, id),
-- with ts read from the id. Only the others need an index of ids: the
-- events stored before, and any event stored with another time. So every
-- new event is written to three B-trees instead of four, a tenth of a
-- REST read's CPU.
--
-- ts_in_id is 1 when ts is the millisecond in the id, which the store
-- decides as it writes. The events stored before count as not (0): the
-- index keeps them as before, until retention deletes them.
ALTER TABLE events ADD COLUMN ts_in_id INTEGER NOT NULL DEFAULT 0;
DROP INDEX events_id;
-- Still an event id is stored once: a second write of an event (the
-- START of a mutation comes with it and from the asynchronous writer)
-- hits the key (ts, id) when the id carries ts, this index otherwise.
CREATE UNIQUE INDEX events_id ON events (id) WHERE ts_in_id = 0;

-- +goose Down
DROP INDEX events_id;
CREATE UNIQUE INDEX events_id ON events (id);
ALTER TABLE events DROP COLUMN ts_in_id;
