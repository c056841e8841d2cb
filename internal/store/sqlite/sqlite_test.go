package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return openWith(t, filepath.Join(t.TempDir(), "users.db"), Options{QuickCheck: true, Now: now})
	})
}

// Without Options.Now the store keeps wall-clock times (the contract
// suite runs on a clock of its own).
func TestDefaultClockIsWallTime(t *testing.T) {
	s := openTemp(t)
	before := time.Now().Truncate(time.Millisecond)
	u, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if after := time.Now(); u.CreatedAt.Before(before) || u.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", u.CreatedAt, before, after)
	}
}

func TestPragmasOnPooledConnections(t *testing.T) {
	s := openTemp(t)
	common := map[string]string{
		"journal_mode":  "wal",
		"busy_timeout":  "5000",
		"synchronous":   "2", // FULL
		"secure_delete": "1",
		"foreign_keys":  "1",
	}
	lookupPragmas := []func(string) string{func(name string) string { return s.look.pragma(t, name) }}
	for _, role := range []struct {
		name      string
		pragmas   []func(name string) string // a reader of PRAGMAs per connection
		queryOnly string
		tempStore string // 2: MEMORY, 0: the default (files)
	}{
		{"writer", pooledPragmas(t, s.w, 1), "0", "2"},
		{"reader", pooledPragmas(t, s.r, readerConns), "1", "0"},
		{"lookup", lookupPragmas, "1", "0"},
	} {
		want := map[string]string{"query_only": role.queryOnly, "temp_store": role.tempStore}
		maps.Copy(want, common)
		for i, pragma := range role.pragmas {
			for name, v := range want {
				if got := pragma(name); got != v {
					t.Errorf("%s conn %d: %s = %s, want %s", role.name, i, name, got, v)
				}
			}
		}
	}
}

// pooledPragmas holds every connection of db's pool at once, so each one
// the pool can open is checked, not the same idle one over and over, and
// returns a reader of PRAGMAs for each.
func pooledPragmas(t *testing.T, db *sql.DB, n int) []func(string) string {
	var readers []func(string) string
	for i, conn := range takeConns(t, db, n) {
		readers = append(readers, func(name string) string {
			var got string
			if err := conn.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, name, err)
			}
			return got
		})
	}
	return readers
}

func takeConns(t *testing.T, db *sql.DB, n int) []*sql.Conn {
	t.Helper()
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// A writer transaction holds the write lock from BEGIN on, so two writers
// never both read and then both try to upgrade (SQLITE_BUSY mid-transaction).
func TestWriterTransactionsBeginImmediate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	s := openAt(t, path)
	tx, err := s.w.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatalf("BeginTx: %v", err)
	}
	defer tx.Rollback()

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(t.Context(), "BEGIN IMMEDIATE")
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
		t.Fatalf("second writer's BEGIN IMMEDIATE: err = %v, want SQLITE_BUSY", err)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	s := openAt(t, path)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{"a":1}`,
		Provider: &store.ProviderLink{ProviderID: uuid.NewString(), URL: "https://idp.example", SubjectID: "s"}}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if !u.CreatedAt.Equal(u.CreatedAt.Truncate(time.Millisecond)) {
		t.Errorf("CreatedAt %v has sub-millisecond precision, which is not stored", u.CreatedAt)
	}
	gone, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.DeleteUser(ctx, gone.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	key, err := s.CursorKey(ctx)
	if err != nil {
		t.Fatalf("CursorKey: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openAt(t, path)
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	if got.Seq != u.Seq || got.Claims != `{"a":1}` || *got.Provider != *u.Provider ||
		!got.CreatedAt.Equal(u.CreatedAt) || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Errorf("after reopen got %+v, want %+v", got, u)
	}
	if key2, err := s.CursorKey(ctx); err != nil || !bytes.Equal(key, key2) {
		t.Errorf("CursorKey after reopen = %x, %v; want %x", key2, err, key)
	}
	// The AUTOINCREMENT high-water mark survives too.
	next, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if next.Seq <= gone.Seq {
		t.Errorf("Seq %d after reopen reuses deleted Seq %d", next.Seq, gone.Seq)
	}
}

// A database from before versions existed opens with its users at version
// 1, which their next update makes 2.
func TestMigrationGivesExistingUsersVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator(t, db).UpTo(t.Context(), 2); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
	id := uuid.NewString()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO users (id, claims, created_at, updated_at) VALUES (?, '{}', 1, 1)`, id); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path)
	if u, err := s.GetUser(t.Context(), id); err != nil || u.Version != 1 {
		t.Fatalf("GetUser after the migration: version %d, err %v; want 1", u.Version, err)
	}
	if u, err := s.UpdateUser(t.Context(), id, store.UserChange{IfVersion: 1}, nil); err != nil || u.Version != 2 {
		t.Fatalf("UpdateUser expecting version 1: version %d, err %v; want 2", u.Version, err)
	}
}

// After Close no byte of a deleted or replaced claims value is left in
// any of the database's files, in the row's page or in overflow pages.
// With another connection still open (another process, a backup tool)
// closing ours does not delete the WAL, so Close's own checkpoint is what
// empties it.
func TestSecureDelete(t *testing.T) {
	t.Run("case=last_connection", func(t *testing.T) { testSecureDelete(t, false) })
	t.Run("case=other_connection_open", func(t *testing.T) { testSecureDelete(t, true) })
}

func testSecureDelete(t *testing.T, otherOpen bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.db")
	s := openAt(t, path)
	ctx := t.Context()
	if otherOpen {
		holdOpen(t, path)
	}

	kept := marker(t, "KEPT")
	secrets := map[string][]byte{
		"deleted small":  marker(t, "DELSMALL"),
		"deleted large":  marker(t, "DELLARGE"),
		"replaced small": marker(t, "REPSMALL"),
		"replaced large": marker(t, "REPLARGE"),
	}
	create := func(m []byte, large bool) store.User {
		t.Helper()
		u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: claimsWith(m, large)}, nil)
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		return u
	}
	create(kept, true)
	delSmall := create(secrets["deleted small"], false)
	delLarge := create(secrets["deleted large"], true)
	repSmall := create(secrets["replaced small"], false)
	repLarge := create(secrets["replaced large"], true)

	// Move the secrets into the main file too, not only the WAL, so that
	// they must be erased from both.
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if !bytes.Contains(readFile(t, filepath.Join(dir, "users.db")), secrets["deleted large"]) {
		t.Fatal("secret not in users.db before the delete; the test would prove nothing")
	}

	for _, u := range []store.User{delSmall, delLarge} {
		if err := s.DeleteUser(ctx, u.ID, 0, nil); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
	}
	for _, u := range []store.User{repSmall, repLarge} {
		if _, err := s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"x":1}`)}, nil); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, e := range entries {
		b := readFile(t, filepath.Join(dir, e.Name()))
		all = append(all, b...)
		for what, m := range secrets {
			if bytes.Contains(b, m) {
				t.Errorf("%s claims still in %s", what, e.Name())
			}
		}
	}
	if !bytes.Contains(all, kept) {
		t.Errorf("the live user's claims are not in the files; is the scan reading the right ones?")
	}
}

// holdOpen keeps a connection to the database at path open, attached to
// its WAL, until t ends.
func holdOpen(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
}

// marker returns a string that can only come from this test run.
func marker(t *testing.T, name string) []byte {
	t.Helper()
	return []byte(name + "-" + rand.Text())
}

// claimsWith returns claims holding m: once when small, repeated over
// about 10 KiB when large, so the row spills into overflow pages and
// every one of them holds the marker.
func claimsWith(m []byte, large bool) string {
	n := 1
	if large {
		n = 10 << 10 / (len(m) + 1)
	}
	return fmt.Sprintf(`{"s":%q}`, strings.Repeat(string(m)+" ", n))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	if err := openAt(t, path).Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s := openAt(t, path)
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	if err := s.r.QueryRowContext(t.Context(),
		`SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatalf("reading goose versions: %v", err)
	}
	if applied != len(files) {
		t.Errorf("%d migrations recorded after two Opens, want %d", applied, len(files))
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	// The file name has URI metacharacters: they must reach the file system
	// as they are.
	dir := filepath.Join(t.TempDir(), "new dir", "sub")
	path := filepath.Join(dir, "a?b%20c#d.db")
	openAt(t, path)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("parent dir mode %o, want 700", perm)
	}
	dbInfo, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database not at the path given: %v", err)
	}
	if perm := dbInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %o, want 600", perm)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.GetUser(t.Context(), uuid.NewString()); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after Close: err = %v, want a closed-database error", err)
	}
}

// A duplicate id violates a unique constraint too, but it is not a link
// conflict: it must not reach the caller as one.
func TestDuplicateIDIsNotLinkConflict(t *testing.T) {
	s := openTemp(t)
	id := uuid.NewString()
	if _, err := s.CreateUser(t.Context(), store.User{ID: id, Claims: `{}`}, nil); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	_, err := s.CreateUser(t.Context(), store.User{ID: id, Claims: `{}`,
		Provider: &store.ProviderLink{ProviderID: uuid.NewString(), URL: "u", SubjectID: "s"}}, nil)
	if err == nil || errors.Is(err, store.ErrProviderLinkConflict) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("duplicate id: err = %v, want an internal error", err)
	}
}

// One process at a time: a second store on the same file is refused (the
// user cache would miss its writes), and the file is free again once the
// first is closed, or its process is gone (the kernel drops the lock).
func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	first, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s, err := Open(t.Context(), path, Options{}); !errors.Is(err, ErrInUse) {
		if err == nil {
			s.Close(t.Context())
		}
		t.Fatalf("second Open: err = %v, want ErrInUse", err)
	}
	// The refused open must not have disturbed the first store.
	if _, err := first.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{}`}, nil); err != nil {
		t.Fatalf("CreateUser after a refused Open: %v", err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again := openAt(t, path)
	if _, err := again.CursorKey(t.Context()); err != nil {
		t.Errorf("CursorKey after reopening: %v", err)
	}
}

func TestCursorKeyReturnsCopy(t *testing.T) {
	s := openTemp(t)
	k1, err := s.CursorKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(k1)
	k1[0] ^= 0xff
	if k2, _ := s.CursorKey(t.Context()); !bytes.Equal(k2, want) {
		t.Errorf("a caller's write to the key changed the cached one")
	}
}

// migrator runs the store's migrations on db step by step, as a test
// needs them: to a version before the latest, back down, up again.
func migrator(t *testing.T, db *sql.DB) *goose.Provider {
	t.Helper()
	p, err := newMigrator(db)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// openTemp opens a store on a fresh file, closed when tb ends.
func openTemp(tb testing.TB) *Store {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "users.db"))
}

// openAt opens a store at path, closed when tb ends; closing it earlier
// is fine.
func openAt(tb testing.TB, path string) *Store {
	tb.Helper()
	return openWith(tb, path, Options{QuickCheck: true})
}

// openWith is openAt with options.
func openWith(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}
