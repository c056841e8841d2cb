-- +goose Up
-- The service records a single event category and decides a category
-- filter itself, so this index only cost every event one more insert.
-- A category filter from another caller reads events_ts and filters.
DROP INDEX events_category_ts;

-- +goose Down
CREATE INDEX events_category_ts ON events (category, ts, id);
