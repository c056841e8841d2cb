package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

const (
	userColumns = `seq, id, claims, provider_id, provider_url, subject_id, version, created_at, updated_at`
	selectUser  = `SELECT ` + userColumns + ` FROM users WHERE id = ?`
	listUsers   = `SELECT ` + userColumns + ` FROM users WHERE seq > ? ORDER BY seq LIMIT ?`
)

// CreateUser inserts u and returns it with Seq, version 1 and timestamps
// filled in; the trail is inserted in the same transaction.
func (s *Store) CreateUser(ctx context.Context, u store.User, trail []store.Event) (store.User, error) {
	u.Version = 1
	u.CreatedAt = s.now()
	u.UpdatedAt = u.CreatedAt
	err := s.write(ctx, "create user", func(g *groupTx) error {
		pid, purl, sub := providerArgs(u.Provider)
		res, err := g.exec(stmtInsertUser,
			u.ID, u.Claims, pid, purl, sub, u.Version, u.CreatedAt.UnixMilli(), u.UpdatedAt.UnixMilli())
		if err != nil {
			return err
		}
		if u.Seq, err = res.LastInsertId(); err != nil {
			return err
		}
		return g.storeTrail(trail)
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// GetUser returns the user with the given id or store.ErrNotFound.
//
// It reads through the lookup connection. A lookup by primary key takes
// microseconds, so it runs to its end once started: under a context that
// can be cancelled, the driver would start a goroutine to watch it, on
// every read (4% of a REST GET's CPU, with database/sql's). A call whose
// context has ended is refused before it starts.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	if err := ctx.Err(); err != nil {
		return store.User{}, opError("get user", err)
	}
	u, ok, gen := s.cache.get(id)
	if ok {
		return u, nil
	}
	u, err := s.look.get(id)
	if err != nil {
		return store.User{}, opError("get user", err)
	}
	s.cache.add(u, gen)
	return u, nil
}

// UpdateUser applies c to the user, increments its version and inserts
// the trail, in one write transaction; also when c changes nothing, so
// that of two updates expecting one version only the first applies. One
// conditional UPDATE decides: it touches the row only when the user exists
// with the version c expects (any, when c.IfVersion is 0).
func (s *Store) UpdateUser(ctx context.Context, id string, c store.UserChange, trail []store.Event) (store.User, error) {
	var claims, updatedAt any // NULL keeps the column as it is
	if c.SetClaims {
		claims = string(c.Claims)
	}
	// An empty change keeps UpdatedAt: nothing of the user changed but
	// its version.
	if c.SetClaims || c.SetProvider {
		updatedAt = s.now().UnixMilli()
	}
	pid, purl, sub := providerArgs(c.Provider)
	var u store.User
	err := s.write(ctx, "update user", func(g *groupTx) error {
		g.changeUser(id)
		var err error
		u, err = scanUser(g.queryRow(stmtUpdateUser, claims, c.SetProvider, pid, purl, sub, updatedAt, id, c.IfVersion))
		if errors.Is(err, sql.ErrNoRows) {
			return whyUntouched(g, id)
		}
		if err != nil {
			return err
		}
		return g.storeTrail(trail)
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// whyUntouched tells why a conditional write left the user's row alone,
// asked inside the same write so nothing can come between: no such user
// (sql.ErrNoRows, which opError makes store.ErrNotFound), or one with
// another version.
func whyUntouched(g *groupTx, id string) error {
	var exists int
	if err := g.queryRow(stmtUserExists, id).Scan(&exists); err != nil {
		return err
	}
	return store.ErrVersionMismatch
}

// DeleteUser removes the user's row, when it has version ifVersion (any,
// when 0), and inserts the trail in the same transaction;
// store.ErrNotFound or store.ErrVersionMismatch otherwise.
func (s *Store) DeleteUser(ctx context.Context, id string, ifVersion int64, trail []store.Event) error {
	return s.write(ctx, "delete user", func(g *groupTx) error {
		g.changeUser(id)
		res, err := g.exec(stmtDeleteUser, id, ifVersion)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return whyUntouched(g, id)
		}
		return g.storeTrail(trail)
	})
}

// ListUsers returns up to p.Limit users with Seq > p.AfterSeq in Seq
// order. It asks for one row more than the page to learn whether another
// page follows.
func (s *Store) ListUsers(ctx context.Context, p store.Page) ([]store.User, bool, error) {
	if p.Limit < 0 {
		return nil, false, fmt.Errorf("sqlite: list users: negative limit %d", p.Limit)
	}
	rows, err := s.stmts.listUsers.QueryContext(ctx, p.AfterSeq, p.Limit+1)
	if err != nil {
		return nil, false, opError("list users", err)
	}
	return readPage("list users", rows, p.Limit)
}

// readPage reads the users of a page asked for with limit+1 rows (one more
// than the page, to learn whether another follows) and returns the page
// and whether more follow. It closes rows.
func readPage(op string, rows *sql.Rows, limit int) ([]store.User, bool, error) {
	defer rows.Close()
	// A page is usually full: room for it at once, within reason for a
	// large limit that few users fill.
	users := make([]store.User, 0, min(limit+1, 128))
	sc := newUserScanner()
	for rows.Next() {
		u, err := sc.scan(rows)
		if err != nil {
			return nil, false, opError(op, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, false, opError(op, err)
	}
	if len(users) > limit {
		return users[:limit], true, nil
	}
	return users, false, nil
}

// scanUser reads one row selected with userColumns.
func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	return newUserScanner().scan(row)
}

// userScanner reads rows selected with userColumns into store.Users,
// through userFromRow as the lookup does. Its destinations are the row's
// plain values (driver.Value is any, so &row[i] converts to *any), which
// database/sql fills with what the driver gives, where typed ones (*int64,
// *sql.NullString) cost a conversion per column. Scan's arguments escape,
// so they live on the heap: one scanner serves every row of a page,
// rather than a new set per row.
type userScanner struct {
	row  [9]driver.Value // userColumns
	dest [9]any          // (*any)(&row[i])
}

func newUserScanner() *userScanner {
	sc := new(userScanner)
	for i := range sc.dest {
		sc.dest[i] = (*any)(&sc.row[i])
	}
	return sc
}

func (sc *userScanner) scan(row interface{ Scan(...any) error }) (store.User, error) {
	defer clear(sc.row[:]) // let the row's strings go with the user
	if err := row.Scan(sc.dest[:]...); err != nil {
		return store.User{}, err
	}
	return userFromRow(&sc.row)
}

// providerArgs returns the provider column values; all NULL when unlinked.
func providerArgs(p *store.ProviderLink) (id, url, subject any) {
	if p == nil {
		return nil, nil, nil
	}
	return p.ProviderID, p.URL, p.SubjectID
}

// now is the time of a write by the store's clock, in UTC at the
// millisecond resolution stored.
func (s *Store) now() time.Time {
	return rules.ToMillisecond(s.clock().UTC())
}

// opError wraps an error of op for callers: a missing row becomes
// store.ErrNotFound, the provider index rejecting a write
// store.ErrProviderLinkConflict, and a database that cannot be used right
// now store.ErrUnavailable (keeping the driver's error, for the logs).
// The driver's message is left out of a conflict: only the sentinel
// matters to callers.
func opError(op string, err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = store.ErrNotFound
	case isProviderConflict(err):
		err = store.ErrProviderLinkConflict
	case isUnavailable(err):
		err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// providerUniqueColumns is how SQLite names users_provider_subject_uq in a
// constraint error: by its columns, since it reports an index's name only
// for an index on expressions.
const providerUniqueColumns = "users.provider_id, users.subject_id"

// isProviderConflict reports whether err is a UNIQUE violation of the
// provider index, as opposed to one of the id column's.
func isProviderConflict(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) &&
		se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
		strings.Contains(se.Error(), providerUniqueColumns)
}
