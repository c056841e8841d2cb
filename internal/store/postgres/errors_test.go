package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/store"
)

// Errors are told apart by SQLSTATE and constraint name (and by type for
// failures below the protocol), never by message.
func TestErrorsByCode(t *testing.T) {
	t.Parallel()
	pg := func(code, constraint string) error {
		return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "any text", ConstraintName: constraint}
	}
	for _, tc := range []struct {
		name      string
		err       error
		want      error // nil: none of the sentinels
		retryable bool
	}{
		{"provider link taken", pg("23505", providerConstraint), store.ErrProviderLinkConflict, false},
		{"id taken", pg("23505", "users_pkey"), nil, false},
		{"no row", pgx.ErrNoRows, store.ErrNotFound, false},
		{"serialization failure", pg("40001", ""), store.ErrUnavailable, true},
		{"deadlock", pg("40P01", ""), store.ErrUnavailable, true},
		{"connection failure", pg("08006", ""), store.ErrUnavailable, true},
		{"backend terminated", pg("57P01", ""), store.ErrUnavailable, true},
		{"crash shutdown", pg("57P02", ""), store.ErrUnavailable, true},
		{"cannot connect now", pg("57P03", ""), store.ErrUnavailable, false},
		{"disk full", pg("53100", ""), store.ErrUnavailable, false},
		{"out of memory", pg("53200", ""), store.ErrUnavailable, false},
		{"too many connections", pg("53300", ""), store.ErrUnavailable, false},
		{"read-only transaction", pg("25006", ""), store.ErrUnavailable, false},
		{"statement timeout", pg("57014", ""), store.ErrUnavailable, false},
		{"undefined table", pg("42P01", ""), nil, false},
		{"bad password", fmt.Errorf("connect: %w", pg("28P01", "")), nil, false},
		{"dial failure", &pgconn.ConnectError{}, store.ErrUnavailable, false},
		{"connection lost mid-call", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), store.ErrUnavailable, true},
		{"connection lost during commit", fmt.Errorf("%w: %w", errCommitUnknown, io.ErrUnexpectedEOF), nil, false},
		{"caller gone", fmt.Errorf("query: %w", context.Canceled), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := opError("op", tc.err)
			for _, sentinel := range []error{store.ErrNotFound, store.ErrProviderLinkConflict, store.ErrUnavailable, store.ErrVersionMismatch} {
				if got := errors.Is(err, sentinel); got != (sentinel == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, sentinel, got)
				}
			}
			if got := retryable(tc.err); got != tc.retryable {
				t.Errorf("retryable = %v, want %v", got, tc.retryable)
			}
		})
	}
}

// The server's detail and context quote row values, claims among them;
// the errors the store returns do not.
func TestErrorsDoNotQuoteClaims(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	const secret = "secret-claim-value"
	_, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{"email":"` + secret + `"`}, nil)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
		t.Fatalf("CreateUser with claims that are not JSON: err = %v, want invalid_text_representation", err)
	}
	if strings.Contains(fmt.Sprintf("%+v %#v", err, pgErr), secret) {
		t.Errorf("the error quotes the claims: %#v", pgErr)
	}

	link := &store.ProviderLink{ProviderID: uuid.NewString(), URL: "https://idp.example", SubjectID: "subject-" + secret}
	create(t, s, `{}`, link)
	_, err = s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`, Provider: link}, nil)
	if !errors.Is(err, store.ErrProviderLinkConflict) {
		t.Fatalf("CreateUser with a taken link: err = %v, want ErrProviderLinkConflict", err)
	}
	if strings.Contains(err.Error(), secret) || errors.As(err, &pgErr) {
		t.Errorf("the conflict carries the server's error (which quotes the link): %v", err)
	}
}

// A pooled connection whose backend was terminated while idle fails the
// next call on it; the call runs again on a new connection.
func TestTerminatedIdleConnectionIsRetried(t *testing.T) {
	t.Parallel()
	dsn, admin := testDB(t)
	s := openStore(t, dsn, Options{MaxConns: 1})
	u := create(t, s, `{}`, nil)
	before := s.pool.Stat().NewConnsCount()
	terminate(t, admin, dsn, "")
	if _, err := s.GetUser(t.Context(), u.ID); err != nil {
		t.Fatalf("GetUser after its connection was terminated: %v", err)
	}
	if s.pool.Stat().NewConnsCount() == before {
		t.Errorf("no new connection was made: the terminated one was not used")
	}
}

// A create whose backend is terminated in the middle of its transaction
// (here, waiting for the Seq lock a listing-like transaction holds) is
// run again on a new connection, and committed once.
func TestTerminatedTransactionIsRetried(t *testing.T) {
	t.Parallel()
	dsn, admin := testDB(t)
	s := openStore(t, dsn, Options{MaxConns: 2})
	other := connect(t, dsn, 1)
	tx := holdSeqLock(t, other)
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
		done <- err
	}()
	waitFor(t, "the create to wait for the Seq lock", func() bool { return waiting(t, admin, dsn, "advisory") == 1 })
	terminate(t, admin, dsn, "advisory")
	// The second run waits for the lock again, on another connection.
	waitFor(t, "the create to run again", func() bool { return waiting(t, admin, dsn, "advisory") == 1 })
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if users, _, err := s.ListUsers(t.Context(), store.Page{Limit: 10}); err != nil || len(users) != 1 {
		t.Errorf("ListUsers: %d users, %v; want the one created", len(users), err)
	}
}

// A statement that outlasts Options.StatementTimeout fails with
// store.ErrUnavailable, and nothing of its call is kept.
func TestStatementTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s := openStore(t, dsn, Options{StatementTimeout: 100 * time.Millisecond})
	holdSeqLock(t, connect(t, dsn, 1))
	_, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{}`}, nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateUser past the statement timeout: err = %v, want ErrUnavailable", err)
	}
	if n := countRows(t, s.pool, "users"); n != 0 {
		t.Errorf("%d users stored, want none", n)
	}
}

// A database an operator made read-only (default_transaction_read_only)
// fails writes and Ping with store.ErrUnavailable and still serves reads;
// writes work again once it is writable, without a restart.
func TestReadOnlyDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	dsn, admin := testDB(t)
	s := openStore(t, dsn, Options{})
	ctx := t.Context()
	u := create(t, s, `{}`, nil)
	db := pgx.Identifier{dbName(t, dsn)}.Sanitize()
	setReadOnly := func(on bool) {
		t.Helper()
		sql := "ALTER DATABASE " + db + " SET default_transaction_read_only = on"
		if !on {
			sql = "ALTER DATABASE " + db + " RESET default_transaction_read_only"
		}
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		terminate(t, admin, dsn, "") // sessions read the setting when they start
	}

	setReadOnly(true)
	if _, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{}`}, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateUser: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, store.UserChange{}, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UpdateUser: err = %v, want ErrUnavailable", err)
	}
	if err := s.AppendEvents(ctx, []store.Event{{ID: uuid.NewString(), Time: time.Now(), Metadata: []byte(`{}`)}}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AppendEvents: err = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetUser(ctx, u.ID); err != nil {
		t.Errorf("GetUser: %v", err)
	}

	setReadOnly(false)
	create(t, s, `{}`, nil)
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once writable again: %v", err)
	}
}

// When the server cannot be reached, calls fail with store.ErrUnavailable
// and work again once it can, without a restart. The store reaches the
// server through a proxy that the test switches off and on.
func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	dsn, admin := testDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	up.Store(true)
	u.Host = startProxy(t, u.Host, up.Load)
	s := openStore(t, u.String(), Options{})
	ctx := t.Context()
	user := create(t, s, `{}`, nil)

	up.Store(false)
	terminate(t, admin, dsn, "")
	if _, err := s.GetUser(ctx, user.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetUser: err = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping: err = %v, want ErrUnavailable", err)
	}

	up.Store(true)
	if _, err := s.GetUser(ctx, user.ID); err != nil {
		t.Errorf("GetUser once the server is back: %v", err)
	}
}

// holdSeqLock begins a transaction on pool holding the Seq lock
// exclusively, as a listing does: creates wait for it until it ends, at
// the latest when t ends.
func holdSeqLock(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), lockSeqExclusive, lockSeq); err != nil {
		t.Fatal(err)
	}
	return tx
}

// terminate ends the backends on dsn's database (those waiting for a lock
// of the given kind, or all) and waits until they have exited.
func terminate(t *testing.T, admin *pgxpool.Pool, dsn, waitingFor string) {
	t.Helper()
	rows, _ := admin.Query(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND ($2 = '' OR wait_event = $2)`, dbName(t, dsn), waitingFor)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the terminated backends to exit", func() bool {
		var left bool
		if err := admin.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ANY ($1))`, pids).Scan(&left); err != nil {
			t.Fatal(err)
		}
		return !left
	})
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path[1:]
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
