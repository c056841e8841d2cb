-- +goose Up
-- SearchUsers (users.go, searchUsers): claims by containment through a GIN
-- index, the provider link through btree indexes; every plan then orders
-- by seq for keyset pagination.

-- jsonb_path_ops: one hash per path to a value, smaller and faster for @>
-- than the default jsonb_ops (which also serves key-existence operators we
-- never use). It has no entries for structures without values ({} or
-- {"a":{}}); searches for those alone scan users by seq instead.
CREATE INDEX users_claims_gin ON users USING gin (claims jsonb_path_ops);

-- Many users share a provider URL: the index ends in seq so a URL search
-- reads its page in order from the cursor on, without sorting them all.
CREATE INDEX users_provider_url_seq ON users (provider_url, seq);

-- A subject without its provider id. Searches with the provider id (and
-- the subject) use users_provider_subject_uq, whose leading column it is.
CREATE INDEX users_subject_id ON users (subject_id);

-- usersd_claims_match reports whether claims match criteria exactly as
-- store.Criteria defines it: every key of criteria is present in claims;
-- an object value matches an object by the same rule, recursively (so {}
-- matches any object); any other value matches an equal value of the same
-- JSON type (jsonb equality: numbers compare numerically, 1 = 1.0; arrays
-- are equal only with equal elements in the same order).
--
-- Containment (claims @> criteria) is what the GIN index answers, and it
-- is looser for arrays: [1,2,3] @> [1], and it ignores order and
-- duplicates. Searches whose criteria hold an array test both: @> to
-- find candidates by the index, this function to keep only exact
-- matches; without arrays @> is exact and runs alone (search.go). PL/pgSQL because a SQL
-- function cannot call itself; IMMUTABLE and PARALLEL SAFE because it
-- reads nothing but its arguments. STRICT: a NULL argument is no match.
-- +goose StatementBegin
CREATE FUNCTION usersd_claims_match(claims jsonb, criteria jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    k text;
    want jsonb;
    have jsonb;
BEGIN
    IF jsonb_typeof(claims) <> 'object' OR jsonb_typeof(criteria) <> 'object' THEN
        RETURN false;
    END IF;
    FOR k, want IN SELECT * FROM jsonb_each(criteria) LOOP
        have := claims -> k;
        IF have IS NULL THEN
            RETURN false;
        ELSIF jsonb_typeof(want) = 'object' THEN
            IF NOT usersd_claims_match(have, want) THEN
                RETURN false;
            END IF;
        ELSIF have <> want THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION usersd_claims_match(jsonb, jsonb);
DROP INDEX users_subject_id;
DROP INDEX users_provider_url_seq;
DROP INDEX users_claims_gin;
