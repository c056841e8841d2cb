package postgres

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/store"
)

// The Seq rule (store.User.Seq): a listing never passes a user that
// commits later with a smaller Seq. A create is held open between drawing
// its Seq and committing, by giving it a trail event whose id another
// transaction has inserted and not committed: its insert waits for that
// transaction. A create with a larger Seq commits meanwhile. The listing
// must wait for the held create and then list both, in order, rather than
// answer at once with the larger Seq and without the smaller one.
func TestListWaitsForCreateInFlight(t *testing.T) {
	t.Parallel()
	checkReadWaitsForCreateInFlight(t, func(ctx context.Context, s *Store) ([]store.User, error) {
		users, _, err := s.ListUsers(ctx, store.Page{Limit: 10})
		return users, err
	})
}

// checkReadWaitsForCreateInFlight creates three users with claims {"k":1}
// on a new database, the second held open between drawing its Seq and
// committing while the third commits. read, a listing or a search that
// returns all three, must wait for the held create and then return the
// three in Seq order.
func checkReadWaitsForCreateInFlight(t *testing.T, read func(context.Context, *Store) ([]store.User, error)) {
	t.Helper()
	dsn, admin := testDB(t)
	s := openStore(t, dsn, Options{MaxConns: 8})
	other := connect(t, dsn, 2)
	ctx := t.Context()
	first := create(t, s, `{"k":1}`, nil)

	held, err := holdEvent(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	// On failure too, or the held create, and Close after it, would wait for ever.
	t.Cleanup(func() { held.tx.Rollback(context.Background()) })
	type created struct {
		u   store.User
		err error
	}
	slow := make(chan created, 1)
	go func() {
		u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{"k":1}`}, []store.Event{held.event})
		slow <- created{u, err}
	}()
	waitFor(t, "the create to wait for the held event", func() bool { return waiting(t, admin, dsn, "transactionid") == 1 })
	fast := create(t, s, `{"k":1}`, nil)

	type readResult struct {
		users []store.User
		err   error
	}
	result := make(chan readResult, 1)
	go func() {
		users, err := read(ctx, s)
		result <- readResult{users, err}
	}()
	waitFor(t, "the read to wait for the create in flight", func() bool {
		select {
		case r := <-result:
			t.Fatalf("the read answered %v, %v while a create that drew a smaller Seq was in flight; it must wait for it",
				idsOf(r.users), r.err)
		default:
		}
		return waiting(t, admin, dsn, "advisory") == 1
	})

	if err := held.release(ctx); err != nil {
		t.Fatal(err)
	}
	c := <-slow
	if c.err != nil {
		t.Fatalf("held CreateUser: %v", c.err)
	}
	if c.u.Seq <= first.Seq || c.u.Seq >= fast.Seq {
		t.Fatalf("Seqs %d, %d (held), %d: the held create did not draw between the others", first.Seq, c.u.Seq, fast.Seq)
	}
	r := <-result
	if r.err != nil {
		t.Fatalf("read: %v", r.err)
	}
	if got, want := idsOf(r.users), []string{first.ID, c.u.ID, fast.ID}; !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
}

// heldEvent is an event inserted by a transaction that has not committed:
// another insert of its id waits until release.
type heldEvent struct {
	event store.Event
	tx    pgx.Tx
}

func holdEvent(ctx context.Context, pool *pgxpool.Pool) (heldEvent, error) {
	e := store.Event{
		ID: uuid.NewString(), Time: time.Now(), Type: "USER_CREATE_START", Category: "user",
		RequestID: "held", ClientID: "test", Metadata: []byte(`{}`),
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return heldEvent{}, err
	}
	if _, err := tx.Exec(ctx, insertEvents, eventArgs([]store.Event{e})...); err != nil {
		return heldEvent{}, errors.Join(err, tx.Rollback(ctx))
	}
	return heldEvent{event: e, tx: tx}, nil
}

// release commits the held event: the waiting insert of its id then does
// nothing, and its transaction goes on.
func (h heldEvent) release(ctx context.Context) error {
	return h.tx.Commit(ctx)
}

// waiting counts the sessions on dsn's database waiting for a lock of the
// given kind (pg_stat_activity's wait_event: "advisory", "transactionid").
func waiting(t *testing.T, admin *pgxpool.Pool, dsn, kind string) int {
	t.Helper()
	var n int
	err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = $2`, dbName(t, dsn), kind).Scan(&n)
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

func idsOf(users []store.User) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}
