package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

var _ store.BulkLoader = (*Store)(nil)

// customPlans makes the search's transaction plan its statement for the
// values given, every time. pgx prepares statements, and after five runs
// PostgreSQL may switch a prepared statement to a generic plan, made
// without the values: one plan for a claim that a handful of users have
// (the GIN index) and for one that half of them have (users by seq,
// filtered), which suits at most one of them.
const customPlans = `SET LOCAL plan_cache_mode = force_custom_plan`

// SearchUsers returns up to p.Limit users with Seq > p.AfterSeq that match
// every criterion of c, in Seq order, and whether more follow. Claims are
// found by containment through users_claims_gin and then checked exactly
// by usersd_claims_match (migrations/00003_search.sql); the provider
// link by its btree indexes. Like ListUsers it reads under the exclusive
// side of the Seq lock.
func (s *Store) SearchUsers(ctx context.Context, c store.Criteria, p store.Page) ([]store.User, bool, error) {
	if p.Limit < 0 {
		return nil, false, fmt.Errorf("postgres: search users: negative limit %d", p.Limit)
	}
	query, args, err := searchQuery(c, p)
	if err != nil {
		return nil, false, err
	}
	return s.readPage(ctx, "search users", p.Limit, []string{customPlans}, query, args...)
}

// searchQuery builds the SELECT of a search: a condition for each
// criterion given, every value a parameter (claim keys are data, never
// SQL), so the statements differ only in which criteria are present.
func searchQuery(c store.Criteria, p store.Page) (string, []any, error) {
	var q query
	conds := []string{`seq > ` + q.arg(p.AfterSeq)}
	limit := q.arg(p.Limit + 1)
	if c.Claims != nil {
		empty, arrays, err := inspect(c.Claims)
		if err != nil {
			return "", nil, err
		}
		// {} matches every user: no condition, rather than one that no
		// index can answer. Without arrays, containment is the exact rule
		// (jsonb's scalar-in-array exception applies at the top level
		// only, which is an object on both sides), and the exact check,
		// PL/pgSQL run on every candidate, is left out: 10,000 candidates
		// cost ~30 ms with it left out, ~15 times that with it.
		if !empty {
			n := q.arg(c.Claims)
			conds = append(conds, `claims @> `+n+`::jsonb`)
			if arrays {
				conds = append(conds, `usersd_claims_match(claims, `+n+`::jsonb)`)
			}
		}
	}
	for _, cond := range []struct{ column, value string }{
		{"provider_id", c.ProviderID},
		{"subject_id", c.SubjectID},
		{"provider_url", c.URL},
	} {
		if cond.value != "" {
			conds = append(conds, cond.column+` = `+q.arg(cond.value))
		}
	}
	return `SELECT ` + userColumns + ` FROM users` + where(conds) + ` ORDER BY seq LIMIT ` + limit, q.args, nil
}

// inspect reports whether claims criteria are the empty object and
// whether they hold an array anywhere. Its error never quotes the
// criteria (PII).
func inspect(claims []byte) (empty, arrays bool, err error) {
	// Valid first: the token loop below would end at io.EOF even inside
	// an unclosed object.
	dec := json.NewDecoder(bytes.NewReader(claims))
	if !json.Valid(claims) {
		return false, false, fmt.Errorf("postgres: search users: claims criteria are not JSON")
	}
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return false, false, fmt.Errorf("postgres: search users: claims criteria are not a JSON object")
	}
	empty = !dec.More()
	for {
		tok, err := dec.Token()
		if err != nil { // io.EOF: valid JSON has no other
			return empty, arrays, nil
		}
		arrays = arrays || tok == json.Delim('[')
	}
}

// loadBatch is how many users LoadUsers copies per transaction: large
// enough that a million load in well under a minute, small enough that
// the listings waiting on the Seq lock behind one wait briefly.
const loadBatch = 10_000

// LoadUsers inserts users with COPY, in transactions of loadBatch users
// each. Seq comes from the identity column and Version is 1, as in
// CreateUser; UpdatedAt is CreatedAt, in UTC at millisecond resolution.
// Each transaction takes the shared side of the Seq lock before the COPY
// draws its values, as CreateUser does, so listings never pass a user
// being loaded. Each batch is committed as it is copied: on an error the
// batches before it stay loaded, and none after it is.
func (s *Store) LoadUsers(ctx context.Context, users []store.User) error {
	columns := []string{"id", "claims", "provider_id", "provider_url", "subject_id", "version", "created_at", "updated_at"}
	for len(users) > 0 {
		batch := users[:min(loadBatch, len(users))]
		users = users[len(batch):]
		err := s.inTx(ctx, "load users", readWrite, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockSeqShared, lockSeq); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
				u := batch[i]
				pid, purl, sub := providerArgs(u.Provider)
				created := rules.ToMillisecond(u.CreatedAt.UTC())
				return []any{u.ID, u.Claims, pid, purl, sub, 1, created, created}, nil
			}))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
