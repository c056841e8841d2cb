// Package sqlite is the SQLite backend of store.Store, built on the pure-Go
// driver modernc.org/sqlite.
//
// sqlite.go opens the database; users.go and events.go hold the queries.
// Writes go through a pool of a single connection whose transactions begin
// IMMEDIATE, so they queue in the process instead of failing with
// SQLITE_BUSY on lock upgrades; reads go through a separate pool of
// read-only connections, which WAL lets run alongside the writer.
package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/usersd/usersd/internal/store"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	readerConns  = 1
	cursorKeyLen = 32
)

// Store is a store.Store on one SQLite database file.
type Store struct {
	w *sql.DB // one connection, BEGIN IMMEDIATE
	r *sql.DB // read-only connections

	keyMu sync.Mutex
	key   []byte // cursor key, nil until first read

	close func() error
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns a ready Store.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// Claims are personal data: a new database file is readable by its
	// owner only, and SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	f.Close()
	w, err := openPool(abs, false, 1)
	if err != nil {
		return nil, err
	}
	// Migrate before the readers connect: the first connection to a new
	// file is the one that turns it into WAL mode and creates the schema.
	if err := migrate(ctx, w); err != nil {
		return nil, errors.Join(err, w.Close())
	}
	r, err := openPool(abs, true, readerConns)
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open readers: %w", err), r.Close(), w.Close())
	}
	s := &Store{w: w, r: r}
	s.close = sync.OnceValue(s.shutdown)
	return s, nil
}

// openPool opens a pool of at most conns connections. The pragmas are in
// the DSN because the driver runs them on every connection it opens; a
// one-off Exec would reach only whichever connection served it.
func openPool(path string, readOnly bool, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, readOnly))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns) // keep them: a new one re-runs every pragma
	return db, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL syncs the WAL on every commit: NORMAL would lose the last
	// acknowledged commits on power loss.
	q.Add("_pragma", "synchronous(FULL)")
	// Zero deleted and replaced content instead of leaving it in free
	// space, so erased claims do not linger in the file.
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Set("_txlock", "immediate")
	}
	// A file: URI with an escaped path, so a '?' or '%' in the path is
	// part of the file name rather than the start of the parameters.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// write runs fn in a write transaction and commits it when fn succeeds.
// Any error rolls everything fn did back, which is what keeps a mutation
// and its success event together: both are committed or neither.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	defer tx.Rollback() // after Commit it is a harmless no-op
	if err := fn(tx); err != nil {
		return opError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// CursorKey returns the database's cursor signing key, creating it on the
// first call against a new database.
func (s *Store) CursorKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key == nil {
		key, err := s.loadCursorKey(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlite: cursor key: %w", err)
		}
		s.key = key
	}
	return bytes.Clone(s.key), nil
}

// loadCursorKey offers a fresh key and reads back whichever key won, so
// processes racing on a new database all end up with the same one.
func (s *Store) loadCursorKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, cursorKeyLen)
	rand.Read(fresh) // never fails; it crashes the program instead
	if _, err := s.w.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES ('cursor_key', ?)
		 ON CONFLICT (name) DO NOTHING`, fresh); err != nil {
		return nil, err
	}
	var key []byte
	if err := s.w.QueryRowContext(ctx,
		`SELECT value FROM settings WHERE name = 'cursor_key'`).Scan(&key); err != nil {
		return nil, err
	}
	if len(key) != cursorKeyLen {
		return nil, fmt.Errorf("stored key has %d bytes, want %d", len(key), cursorKeyLen)
	}
	return key, nil
}

// Ping checks that a reader connection can be had and can read the file.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close checkpoints the WAL into the main file and truncates it, so old
// page versions holding deleted claims are gone, then closes both pools.
// Later calls return the first call's result.
func (s *Store) Close() error {
	return s.close()
}

func (s *Store) shutdown() error {
	err := s.checkpoint()
	// Readers first: the connection that closes last deletes the -wal
	// and -shm files, and that should be the one that just emptied them.
	return errors.Join(err, s.r.Close(), s.w.Close())
}

func (s *Store) checkpoint() error {
	var busy, logFrames, checkpointed int
	err := s.w.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed)
	if err != nil {
		return fmt.Errorf("sqlite: close: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("sqlite: close: checkpoint blocked by an open read")
	}
	return nil
}
