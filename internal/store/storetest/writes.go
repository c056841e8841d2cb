package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// writeCases are the contract of concurrent and abandoned writes: a
// backend may run concurrent mutations together (SQLite commits them in
// one transaction), but each keeps its own outcome.
var writeCases = []testCase{
	{"concurrent_mutations_own_outcomes", testConcurrentMutations},
	{"ended_call_changes_nothing", testEndedCallChangesNothing},
}

// Mutations released at the same moment each get their own outcome: the
// failing ones (a taken link, a missing user) fail alone and leave no
// trail, and every one that succeeds is stored with its trail.
func testConcurrentMutations(t *testing.T, s store.Store, _ *Clock) {
	const each = 8
	existing := make([]store.User, each)
	for i := range existing {
		existing[i] = mustCreate(t, s, `{"v":0}`, nil)
	}
	link := newLink()
	type call struct {
		run    func(ctx context.Context, trail []store.Event) error
		trail  []store.Event
		racing bool  // for the link: nil or ErrProviderLinkConflict
		want   error // otherwise
	}
	var calls []call
	for i := range each {
		calls = append(calls,
			call{racing: true, run: func(ctx context.Context, trail []store.Event) error {
				l := *link
				_, err := s.CreateUser(ctx, store.User{ID: newID(t), Claims: `{}`, Provider: &l}, trail)
				return err
			}},
			call{run: func(ctx context.Context, trail []store.Event) error {
				_, err := s.UpdateUser(ctx, existing[i].ID, store.UserChange{SetClaims: true, Claims: fmt.Appendf(nil, `{"v":%d}`, i+1)}, trail)
				return err
			}},
			call{want: store.ErrNotFound, run: func(ctx context.Context, trail []store.Event) error {
				return s.DeleteUser(ctx, newID(t), 0, trail)
			}},
			call{run: func(ctx context.Context, trail []store.Event) error {
				_, err := s.CreateUser(ctx, store.User{ID: newID(t), Claims: `{}`}, trail)
				return err
			}},
		)
	}
	for i := range calls {
		calls[i].trail = trailOf("USER_MUTATION", uuid.NewString())
	}
	errs := make([]error, len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			<-start
			errs[i] = c.run(t.Context(), c.trail)
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	var stored, absent []store.Event
	for i, err := range errs {
		c := calls[i]
		switch {
		case c.racing && err == nil:
			winners++
		case c.racing && errors.Is(err, store.ErrProviderLinkConflict):
		case c.racing:
			t.Errorf("call %d: err = %v, want nil or ErrProviderLinkConflict", i, err)
		case !errors.Is(err, c.want): // nil wants nil
			t.Errorf("call %d: err = %v, want %v", i, err, c.want)
		}
		if err == nil {
			stored = append(stored, c.trail...)
		} else {
			absent = append(absent, c.trail...)
		}
	}
	if winners != 1 {
		t.Errorf("%d creates got the link, want exactly 1", winners)
	}
	for i, u := range existing {
		assertClaims(t, mustGet(t, s, u.ID).Claims, fmt.Sprintf(`{"v":%d}`, i+1))
	}
	if n := len(listAll(t, s)); n != 2*each+1 {
		t.Errorf("%d users, want %d", n, 2*each+1)
	}
	got := idsOf(allEvents(t, s))
	for _, e := range stored {
		if !slices.Contains(got, e.ID) {
			t.Errorf("event %s of a mutation that succeeded is missing", e.Type)
		}
	}
	for _, e := range absent {
		if slices.Contains(got, e.ID) {
			t.Errorf("event %s of a mutation that failed was stored", e.Type)
		}
	}
}

// A call whose context has ended changes nothing, trail included, and
// says so with the context's error; a read is refused the same way.
func testEndedCallChangesNothing(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{"v":1}`, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	trail := trailOf("USER_MUTATION", "req-ended")
	fresh := store.User{ID: newID(t), Claims: `{}`}
	_, err := s.CreateUser(ctx, fresh, trail)
	assertErr(t, "CreateUser", err, context.Canceled)
	_, err = s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)}, trail)
	assertErr(t, "UpdateUser", err, context.Canceled)
	assertErr(t, "DeleteUser", s.DeleteUser(ctx, u.ID, 0, trail), context.Canceled)
	assertErr(t, "AppendEvents", s.AppendEvents(ctx, trail), context.Canceled)
	_, err = s.GetUser(ctx, u.ID)
	assertErr(t, "GetUser", err, context.Canceled)

	assertUser(t, mustGet(t, s, u.ID), u)
	if _, err := s.GetUser(t.Context(), fresh.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the ended create was stored: err = %v", err)
	}
	if events := allEvents(t, s); len(events) != 0 {
		t.Errorf("%d events stored, want none", len(events))
	}
}
