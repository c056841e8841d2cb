-- +goose Up
-- The claims index of SearchUsers: one row per node of every user's claims
-- (json_tree), so a claim criterion is an index lookup, not a read of
-- every user. Triggers keep it, so it commits with the row it describes on
-- every write path (create, update, delete, bulk load) and a crash can
-- never leave the two apart.
--
-- path is json_tree's fullkey, which quotes a key that is not a plain
-- identifier and escapes its quotes and backslashes ($."a.b" is one key,
-- $.a.b two), so distinct paths never meet. kind is the JSON type, with
-- integer and real both 'number' (their values compare numerically, so 1
-- finds 1.0); value is the number or the string, an array's JSON text
-- (arrays match by equality), and '' for true, false, null and objects
-- (their kind says it all). Array elements get rows too (json_tree walks
-- into them), which no search asks for: leaving them is cheaper than
-- finding out, per row, whether an array encloses it.
--
-- Keyed (path, kind, value, seq): one criterion's matches come in seq
-- order, so a search pages by keyset from its cursor and stops after a
-- page, however many users match.
CREATE TABLE user_claims (
    path  TEXT    NOT NULL,
    kind  TEXT    NOT NULL,
    value ANY     NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (path, kind, value, seq)
) STRICT, WITHOUT ROWID;

-- Finds a user's rows when they are replaced or deleted.
CREATE INDEX user_claims_seq ON user_claims (seq);

-- +goose StatementBegin
CREATE TRIGGER users_claims_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_claims (path, kind, value, seq)
    SELECT t.fullkey,
           CASE t.type WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' ELSE t.type END,
           CASE WHEN t.type IN ('integer', 'real', 'text') THEN t.atom WHEN t.type = 'array' THEN t.value ELSE '' END,
           new.seq
    FROM json_tree(new.claims) AS t
    WHERE t.fullkey <> '$';
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER users_claims_update AFTER UPDATE OF claims ON users
WHEN old.claims IS NOT new.claims BEGIN
    DELETE FROM user_claims WHERE seq = old.seq;
    INSERT INTO user_claims (path, kind, value, seq)
    SELECT t.fullkey,
           CASE t.type WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' ELSE t.type END,
           CASE WHEN t.type IN ('integer', 'real', 'text') THEN t.atom WHEN t.type = 'array' THEN t.value ELSE '' END,
           new.seq
    FROM json_tree(new.claims) AS t
    WHERE t.fullkey <> '$';
END;
-- +goose StatementEnd

-- With secure_delete on, the deleted rows' claim values are zeroed too.
-- +goose StatementBegin
CREATE TRIGGER users_claims_delete AFTER DELETE ON users BEGIN
    DELETE FROM user_claims WHERE seq = old.seq;
END;
-- +goose StatementEnd

-- The users stored before the index.
INSERT INTO user_claims (path, kind, value, seq)
SELECT t.fullkey,
       CASE t.type WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' ELSE t.type END,
       CASE WHEN t.type IN ('integer', 'real', 'text') THEN t.atom WHEN t.type = 'array' THEN t.value ELSE '' END,
       users.seq
FROM users, json_tree(users.claims) AS t
WHERE t.fullkey <> '$';

-- Provider criteria without the unique (provider_id, subject_id) pair.
-- An index's entries end in the rowid, seq, so each lists one value's
-- users in seq order: keyset pages, no sort. Partial: unlinked users
-- (NULL) are never searched for by a provider field.
CREATE INDEX users_provider_id ON users (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX users_subject_id ON users (subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX users_provider_url ON users (provider_url) WHERE provider_url IS NOT NULL;

-- +goose Down
DROP INDEX users_provider_url;
DROP INDEX users_subject_id;
DROP INDEX users_provider_id;
DROP TRIGGER users_claims_delete;
DROP TRIGGER users_claims_update;
DROP TRIGGER users_claims_insert;
DROP TABLE user_claims;
