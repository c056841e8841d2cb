package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// oldEvents appends n events a day old and returns the time after them.
func oldEvents(t *testing.T, s *Store, n int) time.Time {
	t.Helper()
	at := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)
	events := make([]store.Event, n)
	for i := range events {
		events[i] = store.Event{
			ID: uuid.NewString(), Time: at.Add(time.Duration(i%50) * time.Millisecond),
			Type: "USER_RETRIEVE_SUCCESS", Category: "user", RequestID: fmt.Sprint("req-", i),
			ClientID: "test", Metadata: []byte(`{}`),
		}
	}
	if err := s.AppendEvents(t.Context(), events); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return at.Add(time.Second)
}

// While another instance holds the retention lock, DeleteEventsBefore
// deletes nothing and says so without an error; once it is free, it
// deletes.
func TestRetentionSkipsWhileAnotherInstanceRuns(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	s := openStore(t, dsn, Options{})
	cut := oldEvents(t, s, 10)
	tx, err := connect(t, dsn, 1).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), tryLockRetention, lockRetention); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteEventsBefore(t.Context(), cut, 100); n != 0 || err != nil {
		t.Errorf("DeleteEventsBefore while another instance holds the lock = %d, %v; want 0, nil", n, err)
	}
	if n := countRows(t, s.pool, "events"); n != 10 {
		t.Errorf("%d events left, want all 10", n)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteEventsBefore(t.Context(), cut, 100); n != 10 || err != nil {
		t.Errorf("DeleteEventsBefore once the lock is free = %d, %v; want 10, nil", n, err)
	}
}

// Two instances running retention at once: together they delete every
// old event, each once; the counts they report add up to the events
// there were.
func TestRetentionByTwoInstances(t *testing.T) {
	t.Parallel()
	dsn, _ := testDB(t)
	a, b := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	const total = 600
	cut := oldEvents(t, a, total)
	var deleted atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range []*Store{a, b} {
		wg.Go(func() {
			// Until the other instance's batches and this one's have
			// deleted everything; a call that found the lock taken
			// deleted nothing and is simply made again.
			for deleted.Load() < total {
				if time.Now().After(deadline) {
					t.Errorf("after 30 s the instances report %d of %d deletions", deleted.Load(), total)
					return
				}
				n, err := s.DeleteEventsBefore(t.Context(), cut, 7)
				if err != nil {
					t.Errorf("DeleteEventsBefore: %v", err)
					return
				}
				deleted.Add(int64(n))
			}
		})
	}
	wg.Wait()
	if got := deleted.Load(); got != total {
		t.Errorf("the instances report %d deletions, want %d", got, total)
	}
	if n := countRows(t, a.pool, "events"); n != 0 {
		t.Errorf("%d events left, want none", n)
	}
}
