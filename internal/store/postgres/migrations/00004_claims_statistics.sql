-- +goose Up
-- A search's plan hangs on how many users the planner thinks match its
-- claims: few, and it reads them through users_claims_gin and sorts them
-- by seq; many, and it reads users in seq order and stops after a page.
-- Its guess for `claims @> criteria` is the share of the sampled claims
-- (the column's histogram) that contain the criteria. With the default
-- target, 100 sampled claims: a value that 1% of users share is missed in
-- about a third of the samples, guessed rare, and its first page then
-- reads every match (10,000 random heap pages at a million users: 35-60 ms
-- instead of 4 ms). 1,000 sampled claims miss it almost never; the price
-- is an ANALYZE that samples 300,000 rows and ~0.3 ms more planning per
-- search.
ALTER TABLE users ALTER COLUMN claims SET STATISTICS 1000;

-- +goose Down
ALTER TABLE users ALTER COLUMN claims SET STATISTICS -1;
