-- +goose Up
-- seq is the keyset pagination key. Two properties make it one:
--
-- * Never reused: an identity column draws from a sequence, which never
--   hands a value out twice (NO CYCLE), rolled back or deleted.
-- * Visible in order: once a listing has seen seq n, no user with a
--   smaller seq may commit later, or a cursor past n would skip it. A
--   sequence alone does not give that: nextval runs at insert time, not
--   at commit, so a slow create can commit seq 5 after a fast one has
--   committed seq 6 and been listed. The store closes the gap with an
--   advisory lock (see the package documentation): a create takes it
--   shared before its INSERT draws the value, a listing takes it
--   exclusively before its SELECT, so the listing's snapshot comes after
--   every create that had drawn a value.
--
-- CACHE 1 (the default, spelled out) keeps the values drawn by different
-- sessions increasing in the order they are drawn: a larger cache hands
-- each session a range of its own, and a later create could draw a
-- smaller value than an earlier one.
CREATE TABLE users (
    seq          bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1) NOT NULL,
    -- COLLATE "C": ids are compared byte by byte, as SQLite does, and
    -- faster than under a language's collation.
    id           text        COLLATE "C" NOT NULL,
    claims       jsonb       NOT NULL,
    provider_id  text,
    provider_url text,
    subject_id   text,
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL, -- whole milliseconds
    updated_at   timestamptz NOT NULL, -- whole milliseconds
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_seq_key UNIQUE (seq),
    -- Decides provider link conflicts. NULLs are distinct, so any number
    -- of unlinked users coexist.
    CONSTRAINT users_provider_subject_uq UNIQUE (provider_id, subject_id),
    CONSTRAINT users_provider_all_or_none CHECK (
        (provider_id IS NULL) = (provider_url IS NULL)
        AND (provider_id IS NULL) = (subject_id IS NULL))
);

CREATE TABLE settings (
    name  text  NOT NULL PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE settings;
DROP TABLE users;
