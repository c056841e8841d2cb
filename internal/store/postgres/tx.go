package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/internal/store"
)

// maxAttempts bounds the runs of one call. A serialization failure, a
// deadlock or a broken connection is usually gone on the next run; one
// that is not is reported (store.ErrUnavailable), not waited out.
const maxAttempts = 3

// providerConstraint is the unique constraint that decides provider link
// conflicts (migrations/00001_init.sql).
const providerConstraint = "users_provider_subject_uq"

// readWrite is the access mode of a writing transaction: the database's
// default, which is read-write unless an operator made the database
// read-only (default_transaction_read_only, as when a disk runs full);
// then writes fail with 25006, store.ErrUnavailable, instead of going on.
const readWrite pgx.TxAccessMode = ""

// errCommitUnknown marks a COMMIT whose answer never came: the
// transaction may or may not have committed, so it is neither retried nor
// reported as store.ErrUnavailable (which promises nothing was committed).
var errCommitUnknown = errors.New("connection lost during commit, outcome unknown")

// inTx runs fn in a READ COMMITTED transaction of the given access mode
// and commits it, running it again when that may succeed (see retry).
func (s *Store) inTx(ctx context.Context, op string, mode pgx.TxAccessMode, fn func(tx pgx.Tx) error) error {
	return s.retry(ctx, op, func() error {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: mode})
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			// When the connection is gone the rollback fails too, and the
			// server rolls back by itself: fn's error is the one to report.
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) || pgconn.SafeToRetry(err) {
				return err // refused by the server, or never sent: not committed
			}
			return fmt.Errorf("%w: %w", errCommitUnknown, err)
		}
		return nil
	})
}

// retry runs attempt until it succeeds, fails in a way another run cannot
// cure, or has run maxAttempts times, pausing briefly between runs. It
// returns the last error for callers (opError).
func (s *Store) retry(ctx context.Context, op string, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		if n == maxAttempts || ctx.Err() != nil || !retryable(err) {
			return opError(op, err)
		}
		// 10 ms, then 20 ms, plus up to as much again at random, so calls
		// that collided do not collide again.
		pause := time.Duration(n) * 10 * time.Millisecond
		if err := sleep(ctx, pause+rand.N(pause)); err != nil {
			return opError(op, err)
		}
	}
}

// classify tells, by SQLSTATE and error type, never by message, what a
// failed call's error means:
//   - unavailable: the database cannot be used right now
//     (store.ErrUnavailable), as opposed to refusing the statement;
//   - retry: running the transaction again may succeed and cannot apply it
//     twice: the server rolled it back (serialization failure, deadlock,
//     its backend terminated), or its connection broke before COMMIT was
//     sent. Every such error is also unavailable, should the retries run
//     out. A failure to open a new connection is not retried: the server
//     is down or refusing, and callers learn it at once.
//
// A connection lost during COMMIT (errCommitUnknown) is neither: the
// transaction may have committed.
func classify(err error) (unavailable, retry bool) {
	if errors.Is(err, errCommitUnknown) {
		return false, false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case code == "40001", // serialization_failure
			code == "40P01",               // deadlock_detected
			code == "57P01",               // admin_shutdown: this backend was terminated
			code == "57P02",               // crash_shutdown
			strings.HasPrefix(code, "08"): // connection_exception
			return true, true
		case code == "57P03", // cannot_connect_now: starting up, shutting down, recovering
			code == "57014",               // query_canceled: the statement timeout
			code == "25006",               // read_only_sql_transaction: a standby, or a read-only database
			strings.HasPrefix(code, "53"): // insufficient_resources: disk full, out of memory, too many connections
			return true, false
		}
		return false, false
	}
	if errors.As(err, new(*pgconn.ConnectError)) {
		return true, false
	}
	broken := connBroken(err)
	return broken, broken
}

func retryable(err error) bool {
	_, retry := classify(err)
	return retry
}

func isUnavailable(err error) bool {
	unavailable, _ := classify(err)
	return unavailable
}

// connBroken reports whether err is an established connection failing
// under a call: nothing was sent yet, or the network gave out.
func connBroken(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, new(net.Error))
}

// isProviderConflict reports whether err is the provider constraint
// rejecting a write, as opposed to another unique violation.
func isProviderConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == providerConstraint
}

// opError wraps an error of op for callers: a missing row becomes
// store.ErrNotFound, the provider constraint rejecting a write
// store.ErrProviderLinkConflict (without the server's message, which
// quotes the link), and a database that cannot be used right now
// store.ErrUnavailable, keeping the driver's error for the logs.
func opError(op string, err error) error {
	redact(err)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrVersionMismatch):
	case errors.Is(err, pgx.ErrNoRows):
		err = store.ErrNotFound
	case isProviderConflict(err):
		err = store.ErrProviderLinkConflict
	case isUnavailable(err):
		err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// redact clears, in place, the parts of a server error in err that may
// quote row values: PostgreSQL puts the failing row, claims included, in
// an error's detail (a check or not-null violation) and the offending
// input in its context (invalid JSON). Code, message and the names of
// the constraint, table and column stay.
func redact(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		pgErr.Detail, pgErr.Hint, pgErr.Where, pgErr.InternalQuery = "", "", "", ""
	}
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
