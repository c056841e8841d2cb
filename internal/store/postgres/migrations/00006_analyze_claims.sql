-- +goose Up
-- 00004 asked for a larger sample of claims, which only the next ANALYZE
-- collects; on a database upgraded in place that may be far off (autovacuum
-- analyzes after about a tenth of the rows change), and until then common
-- claim values keep their misjudged plans. About 3 s at a million users.
ANALYZE users;

-- +goose Down
-- Nothing to undo: statistics are not schema.
