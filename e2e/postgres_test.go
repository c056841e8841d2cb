package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usersd/usersd/internal/store/postgres/pgtest"
)

// backendEnv selects the store the servers under test use: unset or
// "sqlite" for a SQLite file in the test's directory, "postgres" for a
// fresh PostgreSQL database per directory (pgtest names the server). CI
// runs the suite once each way.
const backendEnv = "USERSD_E2E_BACKEND"

// onPostgres reports whether this run's servers use PostgreSQL.
var onPostgres = os.Getenv(backendEnv) == "postgres"

// databases maps a test directory to its PostgreSQL database, so that a
// test restarting a server on the same directory finds its data again.
var databases sync.Map // dir → database URL

// databaseIn is the --db of a server started on dir: its users.db, or on
// PostgreSQL a database made for dir on first use and dropped when the
// test that made it ends.
func databaseIn(t *testing.T, dir string) string {
	t.Helper()
	if !onPostgres {
		return filepath.Join(dir, "users.db")
	}
	if db, ok := databases.Load(dir); ok {
		return db.(string)
	}
	db := pgtest.Connect(t).Database(t)
	databases.Store(dir, db)
	t.Cleanup(func() { databases.Delete(dir) })
	return db
}

// sqliteOnly skips a test of SQLite's own behaviour (its files, their
// modes, secure delete, backups) when the suite runs on PostgreSQL.
func sqliteOnly(t *testing.T, why string) {
	t.Helper()
	if onPostgres {
		t.Skip("SQLite only: " + why)
	}
}

// TestPostgresStart: on PostgreSQL a start without a configured key is
// refused with a message naming the ways to give one, and creates nothing
// in the working directory (no data directory, no secret); with a key it
// serves, and the password in --db never reaches the log.
func TestPostgresStart(t *testing.T) {
	t.Parallel()
	db := pgtest.Connect(t).Database(t)

	cwd := t.TempDir()
	stderr := serveFails(t, cwd, nil, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", db)
	for _, want := range []string{"--jwt-secret-file", "USERS_JWT_SECRET", "--jwks-url"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not name %s:\n%s", want, stderr)
		}
	}
	if left := listDir(t, cwd); len(left) != 0 {
		t.Errorf("a refused start left %v in its working directory", left)
	}

	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	const password = "not-in-any-log-7f3a"
	u.User = url.UserPassword(u.User.Username(), password) // trust auth ignores it
	s := startDB(t, u.String())
	createUser(t, s, `{}`)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.logs.String(), password) {
		t.Fatalf("the --db password is in the log:\n%s", s.logs)
	}
	if !strings.Contains(s.logs.String(), "xxxxx") {
		t.Fatalf("the log does not show the database, redacted:\n%s", s.logs)
	}
}
