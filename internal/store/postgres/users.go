package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/internal/store"
)

const (
	userColumns = `seq, id, claims, provider_id, provider_url, subject_id, version, created_at, updated_at`

	// lockSeqShared and lockSeqExclusive are the two sides of the Seq rule
	// (see the package documentation): a create before drawing its Seq, a
	// listing before its snapshot.
	lockSeqShared    = `SELECT pg_advisory_xact_lock_shared($1)`
	lockSeqExclusive = `SELECT pg_advisory_xact_lock($1)`

	insertUser = `INSERT INTO users (id, claims, provider_id, provider_url, subject_id, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING seq`
	selectUser = `SELECT ` + userColumns + ` FROM users WHERE id = $1`
	listUsers  = `SELECT ` + userColumns + ` FROM users WHERE seq > $1 ORDER BY seq LIMIT $2`

	// updateUser writes the parts whose flag is set ($3 claims, $5 the
	// link), moves updated_at only when one is, and adds one to the
	// version always, all only when the version is the expected one ($2;
	// 0 expects any).
	updateUser = `UPDATE users SET
			claims       = CASE WHEN $3 THEN $4::jsonb ELSE claims END,
			provider_id  = CASE WHEN $5 THEN $6 ELSE provider_id END,
			provider_url = CASE WHEN $5 THEN $7 ELSE provider_url END,
			subject_id   = CASE WHEN $5 THEN $8 ELSE subject_id END,
			updated_at   = CASE WHEN $3 OR $5 THEN $9 ELSE updated_at END,
			version      = version + 1
		WHERE id = $1 AND ($2::bigint = 0 OR version = $2)
		RETURNING ` + userColumns
	deleteUser = `DELETE FROM users WHERE id = $1 AND ($2::bigint = 0 OR version = $2)`
	userExists = `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`
)

// CreateUser inserts u and returns it with Seq, Version and timestamps
// filled in; the trail is inserted in the same transaction.
func (s *Store) CreateUser(ctx context.Context, u store.User, trail []store.Event) (store.User, error) {
	u.CreatedAt = s.now()
	u.UpdatedAt = u.CreatedAt
	u.Version = 1
	pid, purl, sub := providerArgs(u.Provider)
	err := s.inTx(ctx, "create user", readWrite, func(tx pgx.Tx) error {
		// One round trip: the statements of a batch run in order, so the
		// INSERT draws its seq only once the shared lock is held.
		b := &pgx.Batch{}
		b.Queue(lockSeqShared, lockSeq)
		b.Queue(insertUser, u.ID, u.Claims, pid, purl, sub, u.CreatedAt).QueryRow(func(row pgx.Row) error {
			return row.Scan(&u.Seq)
		})
		queueEvents(b, trail)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// GetUser returns the user with the given id or store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var u store.User
	err := s.retry(ctx, "get user", func() error {
		var err error
		u, err = scanUser(s.pool.QueryRow(ctx, selectUser, id))
		return err
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// UpdateUser applies c to the user, adds one to its version and inserts
// the trail, in one transaction. The version grows and the trail is
// written also when c changes nothing.
func (s *Store) UpdateUser(ctx context.Context, id string, c store.UserChange, trail []store.Event) (store.User, error) {
	var claims []byte
	if c.SetClaims {
		claims = c.Claims
	}
	pid, purl, sub := providerArgs(c.Provider)
	var u store.User
	err := s.inTx(ctx, "update user", readWrite, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(updateUser, id, c.IfVersion, c.SetClaims, claims, c.SetProvider, pid, purl, sub, s.now()).
			QueryRow(func(row pgx.Row) error {
				var err error
				u, err = scanUser(row)
				return err
			})
		queueEvents(b, trail)
		err := tx.SendBatch(ctx, b).Close()
		if errors.Is(err, pgx.ErrNoRows) {
			return whyNoRow(ctx, tx, id, c.IfVersion)
		}
		return err
	})
	if err != nil {
		return store.User{}, err
	}
	return u, nil
}

// DeleteUser removes the user's row and inserts the trail in the same
// transaction; store.ErrNotFound, or store.ErrVersionMismatch when
// ifVersion is not 0 and not the user's version.
func (s *Store) DeleteUser(ctx context.Context, id string, ifVersion int64, trail []store.Event) error {
	return s.inTx(ctx, "delete user", readWrite, func(tx pgx.Tx) error {
		var deleted bool
		b := &pgx.Batch{}
		b.Queue(deleteUser, id, ifVersion).Exec(func(tag pgconn.CommandTag) error {
			deleted = tag.RowsAffected() > 0
			return nil
		})
		queueEvents(b, trail)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if !deleted {
			return whyNoRow(ctx, tx, id, ifVersion)
		}
		return nil
	})
}

// whyNoRow tells why a conditional write of the user found no row: there
// is no such user, or (when a version was expected) it has another one.
// It asks in the write's transaction, after the write: the answer holds
// at some moment between the call and its return.
func whyNoRow(ctx context.Context, tx pgx.Tx, id string, ifVersion int64) error {
	if ifVersion == 0 {
		return store.ErrNotFound
	}
	var exists bool
	if err := tx.QueryRow(ctx, userExists, id).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return store.ErrVersionMismatch
	}
	return store.ErrNotFound
}

// ListUsers returns up to p.Limit users with Seq > p.AfterSeq in Seq
// order, and whether more follow.
func (s *Store) ListUsers(ctx context.Context, p store.Page) ([]store.User, bool, error) {
	if p.Limit < 0 {
		return nil, false, fmt.Errorf("postgres: list users: negative limit %d", p.Limit)
	}
	return s.readPage(ctx, "list users", p.Limit, nil, listUsers, p.AfterSeq, p.Limit+1)
}

// readPage runs query, which selects userColumns in Seq order and at most
// limit+1 rows (one more than the page, to learn whether another
// follows), under the exclusive side of the Seq lock (see the package
// documentation), and returns the page and whether more follow. Every
// listing and search reads through it, so none can pass a create in
// flight. setup, when not empty, runs in the same transaction first.
func (s *Store) readPage(ctx context.Context, op string, limit int, setup []string, query string, args ...any) ([]store.User, bool, error) {
	var users []store.User
	err := s.inTx(ctx, op, pgx.ReadOnly, func(tx pgx.Tx) error {
		users = users[:0]
		b := &pgx.Batch{}
		for _, stmt := range setup {
			b.Queue(stmt)
		}
		b.Queue(lockSeqExclusive, lockSeq)
		b.Queue(query, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				u, err := scanUser(rows)
				if err != nil {
					return err
				}
				users = append(users, u)
			}
			return rows.Err()
		})
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, false, err
	}
	if len(users) > limit {
		return users[:limit], true, nil
	}
	return users, false, nil
}

// scanUser reads one row selected with userColumns. Claims come back as
// jsonb prints them (keys reordered, a space after every colon and comma)
// and are compacted: the same JSON value, in the compact form callers
// write, which the service decodes fastest.
func scanUser(row pgx.Row) (store.User, error) {
	var (
		u              store.User
		claims         []byte
		pid, purl, sub *string
	)
	if err := row.Scan(&u.Seq, &u.ID, &claims, &pid, &purl, &sub, &u.Version, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return store.User{}, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, claims); err != nil {
		// Not the parser's message: it quotes the claims.
		return store.User{}, fmt.Errorf("stored claims of user %s are not JSON", u.ID)
	}
	u.Claims = compact.String()
	// The table's CHECK keeps the three provider columns all set or all NULL.
	if pid != nil {
		u.Provider = &store.ProviderLink{ProviderID: *pid, URL: *purl, SubjectID: *sub}
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.UpdatedAt = u.UpdatedAt.UTC()
	return u, nil
}

// providerArgs returns the provider column values; all NULL when unlinked.
func providerArgs(p *store.ProviderLink) (id, url, subject *string) {
	if p == nil {
		return nil, nil, nil
	}
	return &p.ProviderID, &p.URL, &p.SubjectID
}
