-- +goose Up
-- The service records a single event category and decides a category
-- filter itself (the store has none), so this index only cost every
-- event one more insert.
DROP INDEX events_category_ts;

-- +goose Down
CREATE INDEX events_category_ts ON events (category, ts, id);
