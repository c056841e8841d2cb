// Package postgres is the PostgreSQL backend of store.Store, built on pgx v5
// and its connection pool (pgxpool). Several usersd instances may share one
// database.
//
// postgres.go opens the store; tx.go runs transactions and tells errors
// apart; users.go and events.go hold the queries; the schema is in
// migrations/.
//
// # Pool and migrations
//
// Open waits for the server (Options.ConnectRetry), then applies the
// embedded migrations with goose under a session-level advisory lock
// (lockMigrate), so instances starting together apply each migration once
// and none serves from a schema still being changed. Migrations run on a
// connection of their own, without the statement timeout requests get.
//
// Every call is one transaction on one pooled connection. Those of more
// than one statement begin at READ COMMITTED, said explicitly so that a
// database whose default isolation is stricter does not change the
// reasoning below. A mutation writes its trail (events) in its own
// transaction, each event with ON CONFLICT (id) DO NOTHING, so an event is
// stored once whichever path writes it first.
//
// # Seq: the pagination key under concurrent commits
//
// Seq comes from a sequence, which hands out values at insert time, not at
// commit time. With concurrent creates, a create that drew 5 can commit
// after one that drew 6 has committed and been listed; a cursor past 6 then
// skips 5 for good. The store must keep the rule of store.User.Seq: once a
// reader sees Seq n, no user with a smaller Seq commits later.
//
// It does so with one advisory lock, lockSeq. CreateUser takes it shared
// (pg_advisory_xact_lock_shared) before its INSERT draws the value, and
// holds it until its transaction ends; creates do not wait for each other.
// ListUsers takes it exclusively (pg_advisory_xact_lock) in its own
// transaction before its SELECT. When the exclusive lock is granted, every
// create that had taken the shared lock, and so every create that had
// drawn a value, has committed or rolled back (PostgreSQL releases a
// transaction's locks after its commit is visible). At READ COMMITTED the
// SELECT takes its snapshot after that, so it sees all of them. A create
// that has not drawn its value yet gets the shared lock only once the
// listing's transaction has ended, and then draws a value larger than any
// drawn before: larger than every Seq the listing saw. Sequence values
// grow in the order they are drawn because the sequence caches one value
// at a time (see the migration).
//
// The price: a listing waits for the creates in flight, and creates
// waiting behind a listing wait for its one SELECT (a page of at most
// limit+1 rows by an index); listings exclude each other. Deletes and
// updates take no part: deleting never hides a smaller Seq, and an update
// keeps its user's Seq. The alternative of listing only below the oldest
// transaction still running (pg_snapshot_xmin) would hold back every
// listing for any long transaction in the whole cluster.
//
// # Versions
//
// UpdateUser and DeleteUser test the expected version in the statement's
// own WHERE clause (version = $n), so the test and the write are one step
// under the row lock; only when no row matched does a second query tell a
// missing user (store.ErrNotFound) from another version
// (store.ErrVersionMismatch). Every successful UpdateUser adds one to the
// version, an empty change too.
//
// # Errors
//
// Driver errors are told apart by SQLSTATE (pgconn.PgError.Code) and
// constraint name, never by message: 23505 on users_provider_subject_uq is
// store.ErrProviderLinkConflict; connection failures, class 08, class 53
// (disk full, out of memory, too many connections), 57P01..57P03
// (shutdown, cannot connect now), 57014 (statement timeout) and 25006
// (read-only transaction) are store.ErrUnavailable. A transaction that the
// server rolled back for a serialization failure (40001) or a deadlock
// (40P01), or whose connection broke before its COMMIT was sent, is run
// again, a bounded number of times, then reported as
// store.ErrUnavailable. A connection that breaks during COMMIT leaves the
// outcome unknown: that error is not ErrUnavailable, which promises that
// nothing was committed. PostgreSQL puts row values, claims among them, in
// an error's detail: errors the store returns keep the code and message of
// a server error and drop its detail, hint and context.
//
// # Retention
//
// DeleteEventsBefore runs in one instance at a time: it takes
// lockRetention with pg_try_advisory_xact_lock, and an instance that finds
// it taken deletes nothing and returns (0, nil).
//
// # Engines
//
// The SQL targets PostgreSQL 13 and later (tested on 15). It needs
// advisory locks, identity columns, jsonb and ON CONFLICT. CockroachDB and
// YugabyteDB speak the protocol but are not tested and not supported.
// Advisory locks are where they differ: CockroachDB long had the
// session-level functions (which the migration lock uses) as stubs that
// lock nothing and lacked the transaction-level ones (the Seq rule and
// retention use those), which only recent versions add; YugabyteDB
// refused or ignored them until recent versions too. Where the locks do
// not hold, the migration lock, the Seq rule and the one-instance
// retention silently do not either. The Seq argument above also rests on
// PostgreSQL's own ordering of commit and lock release, and on a sequence
// shared by every session.
//
// # Deleted data
//
// PostgreSQL keeps the bytes of deleted and replaced rows, claims
// included, in the table until VACUUM reclaims the space and later writes
// reuse it, and in its write-ahead log; the SQLite backend's promise that
// no byte of deleted claims stays in the files does not carry over.
package postgres

import (
	"context"
	crand "crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys, one family: the bytes of "usersd" followed by a
// number. Advisory locks are per database, so instances sharing a database
// share them, and other databases on the server are not involved.
const (
	lockMigrate   int64 = 0x7573_6572_7364_0001 // session lock held while migrating
	lockSeq       int64 = 0x7573_6572_7364_0002 // creates shared, listings exclusive
	lockRetention int64 = 0x7573_6572_7364_0003 // one instance deletes old events at a time
)

const cursorKeyLen = 32

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	clock func() time.Time // Options.Now

	closeOnce sync.Once
	closeErr  error
}

// Options adjust Open.
type Options struct {
	// MaxConns bounds the pool; 0 means pgx's default (the greater of 4
	// and the number of CPUs).
	MaxConns int32
	// StatementTimeout is the session's statement_timeout on every pooled
	// connection (not on the migration's); 0 means none.
	StatementTimeout time.Duration
	// ConnectRetry is how long Open keeps trying to reach the server, with
	// backoff, before it fails; 0 means one try.
	ConnectRetry time.Duration
	// Now is the clock the store reads for the times it writes (created
	// and updated times); nil means time.Now.
	Now func() time.Time
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), applies pending migrations and returns a ready Store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.MaxConns < 0 || opts.StatementTimeout < 0 || opts.ConnectRetry < 0 {
		return nil, fmt.Errorf("postgres: open: negative option in %+v", opts)
	}
	cfg, err := pgxpool.ParseConfig(dsn) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	migrateCfg := cfg.ConnConfig.Copy()
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.StatementTimeout > 0 {
		// In whole milliseconds, rounded up: 0 would mean no timeout.
		ms := (opts.StatementTimeout + time.Millisecond - 1) / time.Millisecond
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(int64(ms), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := waitForServer(ctx, pool, opts.ConnectRetry); err != nil {
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, migrateCfg); err != nil {
		pool.Close()
		return nil, err
	}
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	return &Store{pool: pool, clock: clock}, nil
}

// waitForServer pings until the server answers, for at most retryFor. It
// gives up at once on an error that waiting does not cure (a wrong
// password, a missing database).
func waitForServer(ctx context.Context, pool *pgxpool.Pool, retryFor time.Duration) error {
	deadline := time.Now().Add(retryFor)
	backoff := 50 * time.Millisecond
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: instances started together do not knock together
		if ctx.Err() != nil || !isUnavailable(err) || time.Now().Add(wait).After(deadline) {
			return opError("open: connect", err)
		}
		if err := sleep(ctx, wait); err != nil {
			return opError("open: connect", err)
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// migrate applies the pending migrations through a database/sql handle of
// its own on cfg, under a session-level advisory lock: another instance
// migrating at the same moment waits for it (polling once a second, for
// at most 5 minutes or until ctx ends), then finds nothing left to do.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockMigrate), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return errors.Join(fmt.Errorf("postgres: migrate: %w", err), db.Close())
	}
	if _, err := p.Up(ctx); err != nil {
		return errors.Join(opError("migrate", err), db.Close())
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// CursorKey reads the database's cursor signing key, and on a new database
// offers a fresh one and reads back whichever key won, so instances racing
// on a new database all end up with the same one. Only a new database is
// written to. The service reads it once, at start, so it is not cached
// here.
func (s *Store) CursorKey(ctx context.Context) ([]byte, error) {
	const read = `SELECT value FROM settings WHERE name = 'cursor_key'`
	var key []byte
	err := s.retry(ctx, "cursor key", func() error {
		err := s.pool.QueryRow(ctx, read).Scan(&key)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		fresh := make([]byte, cursorKeyLen)
		crand.Read(fresh) // never fails; it crashes the program instead
		if _, err := s.pool.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('cursor_key', $1)
			ON CONFLICT (name) DO NOTHING`, fresh); err != nil {
			return err
		}
		// A statement of its own: at READ COMMITTED it sees the key of a
		// concurrent first call that won.
		return s.pool.QueryRow(ctx, read).Scan(&key)
	})
	if err != nil {
		return nil, err
	}
	if len(key) != cursorKeyLen {
		return nil, fmt.Errorf("postgres: cursor key: stored key has %d bytes, want %d", len(key), cursorKeyLen)
	}
	return key, nil
}

// Ping reads, then commits a write of the time into the settings table:
// readiness means writes succeed too. Any failure but the end of ctx is
// store.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	err := s.inTx(ctx, "ping", readWrite, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT count(*) FROM settings`)
		b.Queue(`INSERT INTO settings (name, value) VALUES ('ready_probe', $1)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, []byte(s.now().Format(time.RFC3339Nano)))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// Close closes the pool once every connection is back (nothing is
// buffered: every write is committed when its call returns). It stops
// waiting when ctx ends; the pool then closes in the background. Later
// calls return the first call's result.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		closed := make(chan struct{})
		go func() {
			s.pool.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-ctx.Done():
			s.closeErr = fmt.Errorf("postgres: close: %w", ctx.Err())
		}
	})
	return s.closeErr
}

// now is the time of a write by the store's clock, in UTC at the
// millisecond resolution stored.
func (s *Store) now() time.Time {
	return rules.ToMillisecond(s.clock().UTC())
}
