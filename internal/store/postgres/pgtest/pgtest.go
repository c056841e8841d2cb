// Package pgtest gives tests databases of their own on a PostgreSQL
// server: the store's tests, and the end-to-end tests that run the binary
// against PostgreSQL.
//
// The server is the one USERS_TEST_POSTGRES names (a postgres:// URL of a
// role allowed to create databases), by default
// postgres://postgres@127.0.0.1:5432/postgres. When no server answers the
// test is skipped, loudly; under CI=true it fails instead, so a CI job
// without its database cannot pass by skipping.
//
//	srv := pgtest.Connect(t)
//	tmpl := srv.Template(t, migrate) // once per test: migrated, then cloned
//	dsn := tmpl.Database(t)          // per subtest: a fresh copy, cheap
//
// Every database is named usersd_test_<run>_<n>, <run> random per test
// process, and is dropped (WITH (FORCE)) when the test that made it ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names the environment variable holding the server's URL.
const EnvURL = "USERS_TEST_POSTGRES"

// DefaultURL is the server tried when EnvURL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres"

// connectTimeout bounds the first contact: a missing server is usually a
// refused connection, but a firewalled one would hang.
const connectTimeout = 5 * time.Second

var (
	run    = randomHex(4) // this test process's part of every name
	serial atomic.Int64   // the last number used in a name
)

// Server is the test PostgreSQL server, reached through a small pool of
// administrative connections that create and drop the test databases.
type Server struct {
	url   *url.URL
	admin *pgxpool.Pool
}

// Connect reaches the server or ends t: skipped with a message naming the
// URL tried, or failed when the environment has CI=true. The pool is
// closed when t ends.
func Connect(t testing.TB) *Server {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL (got %q)", EnvURL, redacted(u))
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	admin, err := pgxpool.New(ctx, raw)
	if err == nil {
		err = admin.Ping(ctx)
		if err != nil {
			admin.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("pgtest: no PostgreSQL server at %s (set %s): %v", redacted(u), EnvURL, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so this fails instead of skipping")
		}
		t.Skip("SKIPPING POSTGRESQL TESTS: " + msg)
	}
	t.Cleanup(admin.Close)
	return &Server{url: u, admin: admin}
}

// Database creates an empty database, dropped when t ends, and returns
// its URL.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	return s.create(t, "")
}

// Template is a database prepared once and then copied, which is much
// cheaper than preparing each copy.
type Template struct {
	srv  *Server
	name string
}

// Template creates a database, runs prepare on its URL (to migrate it,
// say), and returns it as a template for Database. prepare must leave no
// connection open to it: PostgreSQL copies only a database nobody is
// connected to. The template is dropped when t ends, after the copies
// made in t's subtests.
func (s *Server) Template(t testing.TB, prepare func(ctx context.Context, url string) error) *Template {
	t.Helper()
	dsn := s.create(t, "")
	if err := prepare(t.Context(), dsn); err != nil {
		t.Fatalf("pgtest: prepare template: %v", err)
	}
	u, _ := url.Parse(dsn)
	return &Template{srv: s, name: u.Path[1:]}
}

// Database creates a copy of the template, dropped when t ends, and
// returns its URL.
func (tmpl *Template) Database(t testing.TB) string {
	t.Helper()
	return tmpl.srv.create(t, tmpl.name)
}

// Admin is the administrative pool, connected to the server's own
// database: for tests that act on the server, terminating backends say.
func (s *Server) Admin() *pgxpool.Pool { return s.admin }

// create creates a database, a copy of template unless it is empty, and
// drops it when t ends.
func (s *Server) create(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("usersd_test_%s_%d", run, serial.Add(1))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := s.admin.Exec(t.Context(), sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	t.Cleanup(func() {
		// t's context has ended by now; the drop gets its own bound.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *s.url
	u.Path = "/" + name
	return u.String()
}

// redacted is the URL for messages, without its password.
func redacted(u *url.URL) string {
	if u == nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails; it crashes the program instead
	return hex.EncodeToString(b)
}
