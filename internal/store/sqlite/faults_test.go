package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// Driver errors that mean "the database cannot be used right now" become
// store.ErrUnavailable by their result code; errors that mean the
// statement was wrong do not. Each error here is provoked for real.
func TestDriverErrorsByCode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	openAt(t, path) // creates the schema
	raw := func(t *testing.T, dsn string) *sql.DB {
		t.Helper()
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	for _, tc := range []struct {
		name        string
		provoke     func(t *testing.T) error
		unavailable bool
	}{
		{"busy past the busy timeout", func(t *testing.T) error {
			holder := raw(t, "file:"+path)
			conn, err := holder.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.ExecContext(t.Context(), "ROLLBACK") })
			_, err = raw(t, "file:"+path+"?_pragma=busy_timeout(0)").ExecContext(t.Context(), "BEGIN IMMEDIATE")
			return err
		}, true},
		{"read-only connection", func(t *testing.T) error {
			_, err := raw(t, "file:"+path+"?mode=ro").ExecContext(t.Context(),
				`INSERT INTO settings (name, value) VALUES ('x', x'00')`)
			return err
		}, true},
		{"cannot open", func(t *testing.T) error {
			return raw(t, "file:"+filepath.Join(t.TempDir(), "missing", "users.db")).PingContext(t.Context())
		}, true},
		{"full", func(t *testing.T) error {
			db := raw(t, "file:"+filepath.Join(t.TempDir(), "full.db")+"?_pragma=max_page_count(2)")
			_, err := db.ExecContext(t.Context(), `CREATE TABLE a (x); CREATE TABLE b (x); CREATE TABLE c (x)`)
			return err
		}, true},
		{"syntax error", func(t *testing.T) error {
			_, err := raw(t, "file:"+path).ExecContext(t.Context(), "SELEC 1")
			return err
		}, false},
		{"constraint", func(t *testing.T) error {
			_, err := raw(t, "file:"+path).ExecContext(t.Context(),
				`INSERT INTO settings (name, value) VALUES ('a', x'00'), ('a', x'00')`)
			return err
		}, false},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			err := tc.provoke(t)
			if err == nil {
				t.Fatal("no error provoked")
			}
			if got := errors.Is(opError("op", err), store.ErrUnavailable); got != tc.unavailable {
				t.Errorf("opError(%v) is ErrUnavailable: %v, want %v", err, got, tc.unavailable)
			}
		})
	}
}

// A full database refuses a mutation with ErrUnavailable and commits
// nothing of it (neither the change nor its trail); once there is room
// again, the same store writes again.
func TestFullDatabase(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	setMaxPages := func(n int) {
		t.Helper()
		// The writer pool has one connection, so this reaches the one
		// that writes.
		if _, err := s.w.ExecContext(ctx, "PRAGMA max_page_count = "+strconv.Itoa(n)); err != nil {
			t.Fatal(err)
		}
	}
	setMaxPages(pages)
	big := `{"s":"` + strings.Repeat("x", 64<<10) + `"}`
	trail := []store.Event{testEvent("USER_CREATE_START"), testEvent("USER_CREATE_SUCCESS")}
	id := uuid.NewString()
	start := time.Now()
	_, err = s.CreateUser(ctx, store.User{ID: id, Claims: big}, trail)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateUser on a full database: err = %v, want ErrUnavailable", err)
	}
	t.Logf("a write to a full database failed in %v", time.Since(start))
	if _, err := s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(big)}, trail); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UpdateUser on a full database: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused user was stored: GetUser err = %v", err)
	}
	assertNoEvents(t, s)

	setMaxPages(1 << 30)
	if _, err := s.CreateUser(ctx, store.User{ID: id, Claims: big}, trail); err != nil {
		t.Fatalf("CreateUser after room was made: %v", err)
	}
}

// fileFaults break the database file in the ways SQLite does not notice
// through its open file descriptors, and repair them.
var fileFaults = []struct {
	name   string
	inject func(t *testing.T, path string)
	repair func(t *testing.T, path string)
}{
	{"file removed",
		func(t *testing.T, path string) { rename(t, path, path+".away") },
		func(t *testing.T, path string) { rename(t, path+".away", path) }},
	{"file replaced",
		func(t *testing.T, path string) {
			rename(t, path, path+".away")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		func(t *testing.T, path string) { rename(t, path+".away", path) }},
	{"file read-only",
		func(t *testing.T, path string) { chmod(t, path, 0o400) },
		func(t *testing.T, path string) { chmod(t, path, 0o600) }},
	{"directory read-only",
		func(t *testing.T, path string) { chmod(t, filepath.Dir(path), 0o500) },
		func(t *testing.T, path string) { chmod(t, filepath.Dir(path), 0o700) }},
}

// While the file is removed, replaced or read-only, every write fails with
// ErrUnavailable and commits nothing, reads keep working, and after the
// repair the same store writes again.
func TestFileFaults(t *testing.T) {
	for _, fault := range fileFaults {
		t.Run("case="+fault.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db", "users.db")
			s := openAt(t, path)
			ctx := t.Context()
			u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{"v":1}`}, nil)
			if err != nil {
				t.Fatal(err)
			}
			fault.inject(t, path)
			repaired := false
			t.Cleanup(func() {
				if !repaired {
					fault.repair(t, path)
				}
			})

			trail := func() []store.Event {
				return []store.Event{testEvent("USER_X_START"), testEvent("USER_X_SUCCESS")}
			}
			writes := map[string]func() error{
				"create": func() error {
					_, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`}, trail())
					return err
				},
				"update": func() error {
					_, err := s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)}, trail())
					return err
				},
				"empty update": func() error {
					_, err := s.UpdateUser(ctx, u.ID, store.UserChange{}, trail())
					return err
				},
				"append events": func() error { return s.AppendEvents(ctx, trail()) },
				"retention":     func() error { _, err := s.DeleteEventsBefore(ctx, time.Now(), 10); return err },
				"ping":          func() error { return s.Ping(ctx) },
				// Last: on success it would leave nothing to update.
				"delete": func() error { return s.DeleteUser(ctx, u.ID, 0, trail()) },
			}
			for name, write := range writes {
				if err := write(); !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
				}
			}
			if got, err := s.GetUser(ctx, u.ID); err != nil || got.Claims != `{"v":1}` {
				t.Errorf("GetUser during the fault: %s, %v; want the user unchanged", got.Claims, err)
			}
			if _, _, err := s.ListUsers(ctx, store.Page{Limit: 10}); err != nil {
				t.Errorf("ListUsers during the fault: %v", err)
			}
			assertNoEvents(t, s)

			fault.repair(t, path)
			repaired = true
			for _, name := range []string{"create", "update", "empty update", "append events", "retention", "ping", "delete"} {
				if err := writes[name](); err != nil {
					t.Errorf("%s after the repair: %v", name, err)
				}
			}
		})
	}
}

// BenchmarkFileCheck is the cost the file check adds to every write
// transaction; compare BenchmarkCreateUser.
func BenchmarkFileCheck(b *testing.B) {
	s := openTemp(b)
	for b.Loop() {
		if err := s.file.check(); err != nil {
			b.Fatal(err)
		}
	}
}

// A damaged file is refused at Open with ErrCorrupt, unless the check is
// skipped; a file that is not a database at all is refused either way.
func TestOpenRefusesDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	s := openAt(t, path)
	for range 50 {
		if _, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{"s":"` + strings.Repeat("x", 2000) + `"}`}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var root, pageSize int64
	if err := s.r.QueryRowContext(t.Context(), `SELECT rootpage FROM sqlite_schema WHERE name = 'users'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Garble the header of the users table's root page.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = Open(t.Context(), path, Options{QuickCheck: true})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged file: err = %v, want ErrCorrupt", err)
	}
	t.Logf("refused: %v", err)
	skipped, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open without the check: %v", err)
	}
	if err := skipped.Close(t.Context()); err != nil {
		t.Logf("Close: %v", err)
	}

	notDB := filepath.Join(t.TempDir(), "users.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), notDB, Options{QuickCheck: true}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a file that is not a database: err = %v, want ErrCorrupt", err)
	}
}

// testEvent is an event of type typ with fresh ids.
func testEvent(typ string) store.Event {
	return store.Event{ID: uuid.NewString(), Time: time.Now().UTC().Truncate(time.Millisecond), Type: typ,
		Category: "user", RequestID: uuid.NewString(), ClientID: "c", Metadata: []byte(`{}`)}
}

func assertNoEvents(t *testing.T, s *Store) {
	t.Helper()
	if evs, _, err := s.ListEvents(t.Context(), store.EventFilter{Limit: 10}); err != nil || len(evs) != 0 {
		t.Errorf("events after refused writes: %d, %v; want none", len(evs), err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// A server restarted while its file is read-only still starts: reading
// the cursor key of an existing database writes nothing. (Only root can
// open a read-only file for writing, as Open does.)
func TestCursorKeyOfReadOnlyDatabase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to open a read-only file read-write")
	}
	path := filepath.Join(t.TempDir(), "users.db")
	s := openAt(t, path)
	want, err := s.CursorKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, 0o400)
	s = openAt(t, path)
	if got, err := s.CursorKey(t.Context()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("CursorKey of a read-only database: %x, %v; want %x", got, err, want)
	}
}
