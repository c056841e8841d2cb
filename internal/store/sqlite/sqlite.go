// Package sqlite is the SQLite backend of store.Store, built on the pure-Go
// driver modernc.org/sqlite.
//
// sqlite.go opens the database; commit.go is the write path; users.go and
// events.go hold the queries. Writes go through a pool of a single
// connection whose transactions begin IMMEDIATE, so they never fail with
// SQLITE_BUSY on lock upgrades; one goroutine, the committer, runs them,
// committing the writes of concurrent callers together (group commit).
// Reads go through a separate pool of one read-only connection
// (readerConns), which WAL lets run alongside the writer; GetUser has a
// read-only connection of its own (lookup.go).
package sqlite

import (
	"cmp"
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
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/usersd/usersd/internal/store"
)

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	// readerConns is one: with this pure-Go driver a benchmark found one
	// reader connection much faster than several (38 µs against 240 µs an
	// operation at 16-way concurrency).
	readerConns  = 1
	cursorKeyLen = 32
)

// Store is a store.Store on one SQLite database file.
type Store struct {
	w *sql.DB // one connection, BEGIN IMMEDIATE
	r *sql.DB // read-only, readerConns connections

	file  dbFile // the file opened, checked before every commit
	stmts statements
	c     *committer
	look  *lookup
	cache *userCache // nil: off
	lock  *os.File   // held open, locked, while the store is (lockFile)

	clock func() time.Time // Options.Now

	closeOnce sync.Once
	closeErr  error
}

// Options adjust Open.
type Options struct {
	// QuickCheck runs PRAGMA quick_check before anything else touches the
	// file and refuses a damaged database (ErrCorrupt). It reads the
	// whole file: skip it for very large ones.
	QuickCheck bool
	// Now is the clock the store reads for the times it writes (created
	// and updated times); nil means time.Now. Tests set it to control
	// time instead of waiting for it to pass.
	Now func() time.Time
	// UserCacheBytes bounds the memory of the users GetUser keeps (see
	// userCache); 0 means DefaultUserCacheBytes, a negative value keeps
	// none.
	UserCacheBytes int

	groupLimit int    // writes per transaction, at most; 0 means maxGroup
	hooks      *hooks // tests only
}

// ErrCorrupt: the database file is damaged (it fails its integrity check,
// or is not a database at all). Open refuses it rather than serve from it.
var ErrCorrupt = errors.New("sqlite: database file is damaged")

// ErrInUse: another process (another usersd serve) has the database file
// open. Open refuses to share it: this process keeps users in memory.
var ErrInUse = errors.New("sqlite: database file is in use by another process")

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns a ready Store.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
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
	file, err := openedFile(f, abs)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	// Locked before SQLite opens the file, and f closed only after
	// SQLite's connections are: closing any descriptor of a file drops
	// every fcntl lock the process holds on it, SQLite's included.
	canCache, err := lockFile(f)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	s, err := open(ctx, abs, opts)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	s.file, s.lock = file, f
	if canCache {
		s.cache = newUserCache(cmp.Or(opts.UserCacheBytes, DefaultUserCacheBytes))
	}
	go s.commitLoop()
	return s, nil
}

// open opens the connections to the database file at path, applies
// pending migrations and prepares the statements.
func open(ctx context.Context, path string, opts Options) (*Store, error) {
	w, err := openPool(path, false, 1)
	if err != nil {
		return nil, err
	}
	if opts.QuickCheck {
		if err := quickCheck(ctx, w); err != nil {
			return nil, errors.Join(err, w.Close())
		}
	}
	// Migrate before the reader connects: the first connection to a new
	// file is the one that turns it into WAL mode and creates the schema.
	if err := migrate(ctx, w); err != nil {
		return nil, errors.Join(err, w.Close())
	}
	r, err := openPool(path, true, readerConns)
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(opError("open readers", err), r.Close(), w.Close())
	}
	stmts, err := prepareStatements(ctx, w, r)
	if err != nil {
		return nil, errors.Join(err, r.Close(), w.Close())
	}
	look, err := openLookup(ctx, r.Driver(), path)
	if err != nil {
		return nil, errors.Join(err, r.Close(), w.Close())
	}
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	return &Store{w: w, r: r, stmts: stmts, look: look, c: newCommitter(opts.groupLimit, opts.hooks), clock: clock}, nil
}

// quickCheck runs PRAGMA quick_check on db and reports its first findings
// as ErrCorrupt. A file that is not a database fails on the first
// connection already, which this makes.
func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if err != nil {
		return checkError(err)
	}
	defer rows.Close()
	var findings []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return checkError(err)
		}
		findings = append(findings, line)
	}
	if err := rows.Err(); err != nil {
		return checkError(err)
	}
	if len(findings) != 1 || findings[0] != "ok" {
		return fmt.Errorf("%w: PRAGMA quick_check: %s", ErrCorrupt, strings.Join(findings, "; "))
	}
	return nil
}

// checkError wraps an error of the integrity check: ErrCorrupt when the
// driver says the file is damaged or not a database.
func checkError(err error) error {
	if isCorrupt(err) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return opError("integrity check", err)
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
		// A reader caches up to 1 MiB of pages rather than SQLite's 2 MiB:
		// a cached page takes 8 KiB of memory, not 4 (the driver's
		// allocator rounds a page and its header up to a power of two), so
		// full caches were a large part of the peak RSS in the bench
		// harness. Reads cost the same with the smaller cache (the
		// operating system caches the file anyway). The writer keeps 2 MiB:
		// a group of deletes on a large database changes hundreds of
		// scattered pages, and with less room SQLite spills them to the WAL
		// before the commit (deletes ran at half the rate).
		q.Add("_pragma", "cache_size(-1024)")
	} else {
		q.Set("_txlock", "immediate")
		// The savepoint of each write of a group journals the pages it
		// changes, for a rollback to it: in memory, that is a copy, not
		// a write to a temporary file (the WAL is what makes commits
		// durable). Readers keep temporary files: their sorts can be big.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	// A file: URI with an escaped path, so a '?' or '%' in the path is
	// part of the file name rather than the start of the parameters.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := newMigrator(db)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// newMigrator returns the embedded migrations' goose provider for db.
func newMigrator(db *sql.DB) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
}

// CursorKey reads the database's cursor signing key, and on a new database
// offers a fresh one and reads back whichever key won, so processes racing
// on a new database (where Open takes no lock: see lockFile) all end up
// with the same one. Only a new database is written to: a server restarted
// while the file is read-only still starts. The service reads it once, at
// start, so it is not cached here.
func (s *Store) CursorKey(ctx context.Context) ([]byte, error) {
	const read = `SELECT value FROM settings WHERE name = 'cursor_key'`
	var key []byte
	err := s.w.QueryRowContext(ctx, read).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		fresh := make([]byte, cursorKeyLen)
		rand.Read(fresh) // never fails; it crashes the program instead
		if err := s.write(ctx, "store cursor key", func(g *groupTx) error {
			_, err := g.execSQL(`INSERT INTO settings (name, value) VALUES ('cursor_key', ?)
				ON CONFLICT (name) DO NOTHING`, fresh)
			return err
		}); err != nil {
			return nil, err
		}
		err = s.w.QueryRowContext(ctx, read).Scan(&key)
	}
	if err != nil {
		return nil, opError("read cursor key", err)
	}
	if len(key) != cursorKeyLen {
		return nil, fmt.Errorf("sqlite: cursor key: stored key has %d bytes, want %d", len(key), cursorKeyLen)
	}
	return key, nil
}

// Ping reads through a reader connection, then commits a write of the
// time into the settings table: readiness means writes succeed too.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		return opError("ping", err)
	}
	return s.write(ctx, "ping", func(g *groupTx) error {
		_, err := g.execSQL(`INSERT INTO settings (name, value) VALUES ('ready_probe', ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, []byte(s.now().Format(time.RFC3339Nano)))
		return err
	})
}

// Close stops the committer once it has written what is queued (nothing,
// when called after the last request), checkpoints the WAL into the main
// file and truncates it, so old page versions holding deleted claims are
// gone, then closes both pools. The checkpoint gives up when ctx ends
// (the pools are closed anyway). Later calls return the first call's
// result.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.c.stop()
		err := s.checkpoint(ctx)
		// Readers first: the connection that closes last deletes the -wal
		// and -shm files, and that should be the one that just emptied them.
		// The lock's descriptor last: see Open.
		s.closeErr = errors.Join(err, s.look.close(), s.r.Close(), s.w.Close(), s.lock.Close())
	})
	return s.closeErr
}

func (s *Store) checkpoint(ctx context.Context) error {
	var busy, logFrames, checkpointed int
	err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed)
	if err != nil {
		return opError("close: checkpoint", err)
	}
	if busy != 0 {
		return errors.New("sqlite: close: checkpoint blocked by an open read")
	}
	return nil
}
