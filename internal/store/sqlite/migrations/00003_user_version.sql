-- +goose Up
-- A user's version, its ETag: 1 on create, one more on every update. The
-- users stored before versions existed start at 1.
ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE users DROP COLUMN version;
