package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/usersd/usersd/internal/jsontext"
	"github.com/usersd/usersd/internal/store"
)

// claimLeaf is one lookup in the claims index: the user must have a row
// (path, kind, value). See migrations/00004_user_claims.sql.
type claimLeaf struct {
	path, kind string
	value      any // int64, float64 or string, as json_tree gave it
}

// decomposeClaims is the criteria's own json_tree, with the index's kind
// and value expressions, so a criterion's paths and values are spelled
// exactly as the triggers spelled the users'.
const decomposeClaims = `SELECT t.id, coalesce(t.parent, -1), t.fullkey, t.type,
	CASE t.type WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' ELSE t.type END,
	CASE WHEN t.type IN ('integer', 'real', 'text') THEN t.atom WHEN t.type = 'array' THEN t.value ELSE '' END,
	CASE WHEN t.type = 'object' THEN t.value = '{}' ELSE 0 END
FROM json_tree(?) AS t`

// claimLeaves turns a claims criterion into the index rows a match must
// have: every scalar by its path, every array whole (arrays match when
// equal, so nothing inside one is looked up), and every empty object
// (which asks only that an object be there). A non-empty object asks for
// nothing of its own: its leaves imply it. Kinds likely to be rarer come
// first (leafRank), the order orderBySelectivity keeps among leaves of
// equal counts. Criteria that are not an object are an error: they would
// have no leaves, and so match every user.
func (s *Store) claimLeaves(ctx context.Context, claims []byte) ([]claimLeaf, error) {
	rows, err := s.r.QueryContext(ctx, decomposeClaims, string(claims))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var leaves []claimLeaf
	inArray := map[int64]bool{} // arrays and everything in them, by json_tree id
	for rows.Next() {
		var (
			id, parent int64
			typ        string
			leaf       claimLeaf
			emptyObj   bool
		)
		if err := rows.Scan(&id, &parent, &leaf.path, &typ, &leaf.kind, &leaf.value, &emptyObj); err != nil {
			return nil, err
		}
		switch {
		case leaf.path == "$":
			if typ != "object" {
				return nil, errors.New("sqlite: search users: claims criteria are not a JSON object")
			}
		case inArray[parent]:
			inArray[id] = true
		case typ == "array":
			inArray[id] = true
			leaves = append(leaves, leaf)
		case typ != "object" || emptyObj:
			leaves = append(leaves, leaf)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(leaves, func(a, b claimLeaf) int { return leafRank(a) - leafRank(b) })
	return leaves, nil
}

// leafRank orders lookups by how few users they are likely to match:
// values first, then arrays, then bare kinds (true, false, null), then
// "is an object".
func leafRank(l claimLeaf) int {
	switch l.kind {
	case "number", "text":
		return 0
	case "array":
		return 1
	case "object":
		return 3
	}
	return 2
}

// selectivityCap bounds the index rows counted per leaf when choosing
// which leaf drives a search: enough to tell a rare value from a common
// one, cheap however common it is.
const selectivityCap = 1000

var countLeaf = `SELECT count(*) FROM (SELECT 1 FROM user_claims
	WHERE path = ? AND kind = ? AND value = ? LIMIT ` + strconv.Itoa(selectivityCap) + `)`

// orderBySelectivity puts first the leaf with the fewest index rows (up to
// selectivityCap), keeping leafRank's order among equals. The first leaf
// drives the search and each of its rows costs a lookup of every other
// leaf, so driving by a value 10,000 users share to find the one who also
// has a rare one read all 10,000 (368 ms at a million users, against a
// few ms the other way round).
func (s *Store) orderBySelectivity(ctx context.Context, leaves []claimLeaf) error {
	type counted struct {
		leaf claimLeaf
		rows int
	}
	byRows := make([]counted, len(leaves))
	for i, l := range leaves {
		byRows[i].leaf = l
		if err := s.r.QueryRowContext(ctx, countLeaf, l.path, l.kind, l.value).Scan(&byRows[i].rows); err != nil {
			return err
		}
	}
	slices.SortStableFunc(byRows, func(a, b counted) int { return a.rows - b.rows })
	for i, c := range byRows {
		leaves[i] = c.leaf
	}
	return nil
}

// userColumnsOf is userColumns of the users table aliased u.
var userColumnsOf = "u." + strings.ReplaceAll(userColumns, ", ", ", u.")

// SearchUsers returns up to p.Limit users matching c with Seq >
// p.AfterSeq, in Seq order, and whether more follow.
//
// Every criterion is an index lookup, and the page is read in seq order
// from the first one's index, so a page costs the rows scanned to fill it
// wherever the cursor is (never OFFSET, never a sort of all matches):
//   - claims: the first leaf's rows in user_claims (path, kind, value,
//     seq) drive; each candidate must have the other leaves too, a point
//     lookup each;
//   - a provider id with a subject id: the unique index finds the one
//     user, and its claims are checked;
//   - other provider fields alone: their index on users, whose entries
//     end in seq.
func (s *Store) SearchUsers(ctx context.Context, c store.Criteria, p store.Page) ([]store.User, bool, error) {
	if p.Limit < 0 {
		return nil, false, fmt.Errorf("sqlite: search users: negative limit %d", p.Limit)
	}
	var leaves []claimLeaf
	if c.Claims != nil {
		var err error
		if leaves, err = s.claimLeaves(ctx, c.Claims); err != nil {
			return nil, false, opError("search users: criteria", err)
		}
	}
	if len(leaves) > 1 {
		if err := s.orderBySelectivity(ctx, leaves); err != nil {
			return nil, false, opError("search users: criteria", err)
		}
	}
	query, args := searchQuery(c, leaves, p)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, opError("search users", err)
	}
	return readPage("search users", rows, p.Limit)
}

// searchQuery builds the statement of a search; every value is a bound
// parameter, never SQL text.
func searchQuery(c store.Criteria, leaves []claimLeaf, p store.Page) (string, []any) {
	var q strings.Builder
	var args []any
	// The unique provider index finds at most one user: it drives, when
	// both of its columns are given or when there are no claims.
	seq := "u.seq"
	if len(leaves) == 0 || c.ProviderID != "" && c.SubjectID != "" {
		q.WriteString("SELECT " + userColumnsOf + " FROM users AS u WHERE u.seq > ?")
		args = append(args, p.AfterSeq)
	} else {
		// CROSS JOIN keeps the index first: it yields the page in order.
		q.WriteString("SELECT " + userColumnsOf + ` FROM user_claims AS c CROSS JOIN users AS u ON u.seq = c.seq
			WHERE c.path = ? AND c.kind = ? AND c.value = ? AND c.seq > ?`)
		args = append(args, leaves[0].path, leaves[0].kind, leaves[0].value, p.AfterSeq)
		leaves, seq = leaves[1:], "c.seq"
	}
	for _, f := range []struct{ column, value string }{
		{"u.provider_id", c.ProviderID}, {"u.subject_id", c.SubjectID}, {"u.provider_url", c.URL},
	} {
		if f.value != "" {
			q.WriteString(" AND " + f.column + " = ?")
			args = append(args, f.value)
		}
	}
	if len(leaves) > 0 {
		// One subquery for all the other leaves, not an AND of one
		// EXISTS each: SQLite bounds an expression's depth, and a
		// criterion may have hundreds of leaves.
		q.WriteString(" AND (SELECT count(*) FROM (VALUES ")
		for i, l := range leaves {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, l.path, l.kind, l.value)
		}
		fmt.Fprintf(&q, `) AS v CROSS JOIN user_claims AS x
			ON x.path = v.column1 AND x.kind = v.column2 AND x.value = v.column3 AND x.seq = %s) = %d`, seq, len(leaves))
	}
	fmt.Fprintf(&q, " ORDER BY %s LIMIT ?", seq)
	args = append(args, p.Limit+1)
	return q.String(), args
}

// loadChunk is how many users one write of LoadUsers inserts.
const loadChunk = 10_000

// loadUsersSQL inserts a chunk of users given as one JSON array of
// [id, claims, provider id, url, subject, created at] rows, in array
// order. One statement, not one per user: a write runs in a savepoint,
// and SQLite truncates its in-memory sub-journal after every statement by
// walking it from the start (memjrnlTruncate), which made thousands of
// trigger-firing inserts in one savepoint quadratic. Claims travel as
// JSON strings, so the stored text is exactly the given one.
const loadUsersSQL = `INSERT INTO users (id, claims, provider_id, provider_url, subject_id, version, created_at, updated_at)
	SELECT u.value ->> 0, u.value ->> 1, u.value ->> 2, u.value ->> 3, u.value ->> 4, 1, u.value ->> 5, u.value ->> 5
	FROM json_each(?) AS u ORDER BY u.key`

// LoadUsers inserts users loadChunk at a time, each chunk one statement in
// one write (see loadUsersSQL); the triggers index their claims as for any
// insert. No events. A failure leaves the chunks before it stored.
//
// A chunk touches pages all over the claims index: one transaction per
// chunk writes each of them to the WAL once, where a transaction per user
// would write it once per user.
func (s *Store) LoadUsers(ctx context.Context, users []store.User) error {
	for len(users) > 0 {
		chunk := users[:min(loadChunk, len(users))]
		users = users[len(chunk):]
		rows := loadRows(chunk)
		err := s.write(ctx, "load users", func(g *groupTx) error {
			_, err := g.execSQL(loadUsersSQL, rows)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// loadRows encodes users as loadUsersSQL's JSON array; an unlinked
// user's provider fields are null.
func loadRows(users []store.User) string {
	b := make([]byte, 0, 512*len(users))
	b = append(b, '[')
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = jsontext.AppendString(b, u.ID)
		b = append(b, ',')
		b = jsontext.AppendString(b, u.Claims)
		if p := u.Provider; p != nil {
			for _, f := range []string{p.ProviderID, p.URL, p.SubjectID} {
				b = append(b, ',')
				b = jsontext.AppendString(b, f)
			}
		} else {
			b = append(b, ",null,null,null"...)
		}
		b = append(b, ',')
		b = strconv.AppendInt(b, u.CreatedAt.UnixMilli(), 10)
		b = append(b, ']')
	}
	return string(append(b, ']'))
}

var _ store.BulkLoader = (*Store)(nil)
