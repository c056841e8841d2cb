package postgres

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/postgres/pgtest"
	"github.com/usersd/usersd/internal/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	tmpl := migratedTemplate(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return openStore(t, tmpl.Database(t), Options{Now: now, MaxConns: 4})
	})
}

// migratedTemplate is a database with the schema, to copy for each test
// of the contract suite.
func migratedTemplate(t *testing.T) *pgtest.Template {
	t.Helper()
	return pgtest.Connect(t).Template(t, func(ctx context.Context, dsn string) error {
		s, err := Open(ctx, dsn, Options{})
		if err != nil {
			return err
		}
		return s.Close(ctx)
	})
}

// testDB is a new database of t's own, empty (the first Open migrates
// it), and the server's administrative pool.
func testDB(t *testing.T) (dsn string, admin *pgxpool.Pool) {
	t.Helper()
	srv := pgtest.Connect(t)
	return srv.Database(t), srv.Admin()
}

func openStore(t *testing.T, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// connect opens a pool of the test's own on dsn, beside the store's: a
// second client of the database.
func connect(t *testing.T, dsn string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func create(t *testing.T, s *Store, claims string, link *store.ProviderLink) store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: claims, Provider: link}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// waitFor polls cond until it holds, failing t after a while. It waits
// for what another connection is observed doing (a lock wait, say), not
// for time to pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Claims come back compact, as the service's fast decoder expects them,
// though jsonb prints spaces (that they are the same JSON value is the
// contract suite's claims_roundtrip).
func TestClaimsCompact(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s := openStore(t, dsn, Options{})
	const claims = `{"zeta":1,"a":{"list":[1,2.5,"x, y: z",null,true],"nested":{"k":"v"}},"long key":"ünï\"cødé","n":-0.125}`
	u := create(t, s, claims, nil)
	got, err := s.GetUser(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if len(got.Claims) != len(claims) {
		t.Errorf("claims %s are not compact (%d bytes, the input has %d)", got.Claims, len(got.Claims), len(claims))
	}
}

// Two instances starting at once on a new database both start: one
// migrates, the other waits for the migration lock and finds nothing to do.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	srv := pgtest.Connect(t)
	dsn := srv.Database(t) // empty: no schema yet
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn, Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close(context.Background()) })
	}
	create(t, stores[0], `{}`, nil)
	create(t, stores[1], `{}`, nil)
	var applied, distinct int
	err := stores[0].pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&applied, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if want := len(files); applied != want || distinct != want {
		t.Errorf("goose_db_version holds %d applications of %d migrations, want each of %d once", applied, distinct, want)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	// Long enough that SHOW itself never hits it on a busy machine (2 ms
	// once did), with a fraction of a millisecond to round.
	s := openStore(t, dsn, Options{MaxConns: 3, StatementTimeout: time.Second + 500*time.Microsecond})
	if got := s.pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want 3", got)
	}
	var timeout string
	if err := s.pool.QueryRow(t.Context(), `SHOW statement_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "1001ms" { // rounded up to whole milliseconds
		t.Errorf("statement_timeout = %s, want 1001ms", timeout)
	}
	if _, err := Open(t.Context(), dsn, Options{MaxConns: -1}); err == nil {
		t.Error("Open with a negative MaxConns succeeded")
	}
}

// Without Options.Now the store keeps wall-clock times (the contract
// suite runs on a clock of its own).
func TestDefaultClockIsWallTime(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s := openStore(t, dsn, Options{})
	before := time.Now().Truncate(time.Millisecond)
	u := create(t, s, `{}`, nil)
	if after := time.Now(); u.CreatedAt.Before(before) || u.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", u.CreatedAt, before, after)
	}
}

// Open keeps trying while the server does not answer, within
// ConnectRetry. The "server" here is a proxy that hangs up on the first
// connection and forwards the next ones.
func TestOpenRetriesConnect(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	proxy := startProxy(t, u.Host, func() bool { return accepted.Add(1) > 1 })
	u.Host = proxy
	q := u.Query()
	q.Set("sslmode", "disable") // one connection per attempt: no plaintext fallback after TLS
	u.RawQuery = q.Encode()
	s := openStore(t, u.String(), Options{ConnectRetry: time.Minute})
	create(t, s, `{}`, nil)
	if accepted.Load() < 2 {
		t.Errorf("%d connections reached the proxy; the first was refused, so Open must have retried", accepted.Load())
	}

	// With no retry, the refused connection is the answer: unavailable.
	accepted.Store(0)
	if _, err := Open(t.Context(), u.String(), Options{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open without retry against a refusing server: err = %v, want ErrUnavailable", err)
	}
}

// startProxy forwards TCP connections to target for as long as t runs;
// a connection for which forward returns false is closed at once.
func startProxy(t *testing.T, target string, forward func() bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !forward() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// Close waits for the connections in use, but no longer than its context.
func TestCloseGivesUpWithContext(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s, err := Open(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a connection in use and an ended context: err = %v, want context.Canceled", err)
	}
	conn.Release()
	if err := s.Close(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("second Close: err = %v, want the first call's result", err)
	}
}

// The cursor key is one per database: a second instance reads the
// first one's.
func TestCursorKeySharedByInstances(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	a, b := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	ka, err := a.CursorKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.CursorKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if string(ka) != string(kb) {
		t.Errorf("instances disagree on the cursor key")
	}
}
