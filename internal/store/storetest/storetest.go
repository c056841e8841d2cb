// Package storetest is the behaviour every store.Store backend must have,
// as a test suite each backend runs against itself:
//
//	func TestContract(t *testing.T) { storetest.Run(t, openFresh) }
//
// The suite drives the store's clock: open hands the backend the clock
// to read, and the tests move it, so no test waits for time to pass.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// Run runs the contract suite. open must return an empty store that no
// other caller shares, that reads the time of its writes (created and
// updated times) from now and from no other clock, and close it when t
// ends (t.Cleanup); the subtests run in parallel, each on its own store
// and clock.
func Run(t *testing.T, open func(t *testing.T, now func() time.Time) store.Store) {
	userCases := []testCase{
		{"create_get_roundtrip", testCreateGet},
		{"unlinked_user", testUnlinkedUser},
		{"missing_user", testMissingUser},
		{"delete", testDelete},
		{"update_claims_only", testUpdateClaimsOnly},
		{"update_provider_only", testUpdateProviderOnly},
		{"update_unlink_provider", testUpdateUnlink},
		{"update_nothing", testUpdateNothing},
		{"update_keeps_own_link", testUpdateKeepsOwnLink},
		{"link_conflict_on_create", testConflictOnCreate},
		{"link_conflict_on_update", testConflictOnUpdate},
		{"same_subject_other_provider", testSameSubjectOtherProvider},
		{"unlink_frees_link", testUnlinkFreesLink},
		{"delete_frees_link", testDeleteFreesLink},
		{"concurrent_create_same_link", testConcurrentCreateSameLink},
		{"list_paging", testListPaging},
		{"list_stable_under_churn", testListUnderChurn},
		{"seq_not_reused", testSeqNotReused},
		{"cursor_key", testCursorKey},
		{"cursor_key_concurrent_first_use", testCursorKeyConcurrent},
		{"ping", testPing},
	}
	for _, tc := range slices.Concat(userCases, eventCases, writeCases, concurrencyCases) {
		t.Run("case="+tc.name, func(t *testing.T) {
			t.Parallel()
			clock := &Clock{now: clockStart}
			tc.fn(t, open(t, clock.Now), clock)
		})
	}
}

// testCase is one contract test, run on a store and clock of its own.
type testCase struct {
	name string
	fn   func(t *testing.T, s store.Store, clock *Clock)
}

// clockStart is where every test's clock starts: an arbitrary instant
// with a fraction of a millisecond, outside UTC, so a store that rounds
// coarser than a millisecond, or keeps the clock's zone, is caught.
var clockStart = time.Date(2026, 11, 28, 14, 2, 5, 123_456_789, time.FixedZone("UTC+1", 3600))

// Clock is a store's clock in a contract test: it stands still until the
// test advances it. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time; it is what the store reads.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testCreateGet(t *testing.T, s store.Store, clock *Clock) {
	link := newLink()
	created, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: []byte(`{"a":1}`), Provider: link}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if created.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", created.Seq)
	}
	assertTime(t, "CreatedAt", created.CreatedAt, clock.Now())
	if !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", created.UpdatedAt, created.CreatedAt)
	}
	got := mustGet(t, s, created.ID)
	assertUser(t, got, created)
	if string(got.Claims) != `{"a":1}` || !reflect.DeepEqual(got.Provider, link) {
		t.Errorf("stored claims %s, provider %+v; want the ones given", got.Claims, got.Provider)
	}
}

func testUnlinkedUser(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{}`, nil)
	if got := mustGet(t, s, u.ID); got.Provider != nil || string(got.Claims) != `{}` {
		t.Errorf("got provider %+v, claims %s; want nil, {}", got.Provider, got.Claims)
	}
}

func testMissingUser(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	id := newID(t)
	if _, err := s.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateUser(ctx, id, store.UserChange{SetClaims: true, Claims: []byte(`{}`)}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateUser(ctx, id, store.UserChange{}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser with no change: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, id, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser: err = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	gone := mustCreate(t, s, `{}`, nil)
	kept := mustCreate(t, s, `{}`, nil)
	if err := s.DeleteUser(ctx, gone.ID, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, gone.ID, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser: err = %v, want ErrNotFound", err)
	}
	assertUser(t, mustGet(t, s, kept.ID), kept)
}

func testUpdateClaimsOnly(t *testing.T, s store.Store, clock *Clock) {
	link := newLink()
	u := mustCreate(t, s, `{"v":1}`, link)
	clock.Advance(time.Millisecond)
	got := mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)})
	want := u
	want.Claims = []byte(`{"v":2}`)
	want.UpdatedAt = got.UpdatedAt
	assertUser(t, got, want)
	assertTime(t, "UpdatedAt", got.UpdatedAt, clock.Now())
	assertUser(t, mustGet(t, s, u.ID), got)
}

func testUpdateProviderOnly(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, nil)
	link := newLink()
	clock.Advance(time.Millisecond)
	got := mustUpdate(t, s, u.ID, store.UserChange{SetProvider: true, Provider: link})
	want := u
	want.Provider = link
	want.UpdatedAt = got.UpdatedAt
	assertUser(t, got, want)
	assertTime(t, "UpdatedAt", got.UpdatedAt, clock.Now())
	assertUser(t, mustGet(t, s, u.ID), got)
}

func testUpdateUnlink(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, newLink())
	clock.Advance(time.Hour)
	got := mustUpdate(t, s, u.ID, store.UserChange{SetProvider: true, Provider: nil})
	if got.Provider != nil {
		t.Errorf("Provider after unlink = %+v, want nil", got.Provider)
	}
	if string(got.Claims) != `{"v":1}` {
		t.Errorf("Claims after unlink = %s, want unchanged", got.Claims)
	}
	assertTime(t, "UpdatedAt", got.UpdatedAt, clock.Now())
	assertUser(t, mustGet(t, s, u.ID), got)
}

func testUpdateNothing(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, newLink())
	clock.Advance(time.Second)
	assertUser(t, mustUpdate(t, s, u.ID, store.UserChange{}), u)
	assertUser(t, mustGet(t, s, u.ID), u)
}

// Re-setting the link a user already has is not a conflict with itself.
func testUpdateKeepsOwnLink(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	u := mustCreate(t, s, `{}`, link)
	same := *link
	got := mustUpdate(t, s, u.ID, store.UserChange{SetProvider: true, Provider: &same, SetClaims: true, Claims: []byte(`{"x":1}`)})
	if !reflect.DeepEqual(got.Provider, link) || string(got.Claims) != `{"x":1}` {
		t.Errorf("got provider %+v, claims %s", got.Provider, got.Claims)
	}
}

func testConflictOnCreate(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	owner := mustCreate(t, s, `{}`, link)
	other := *link
	other.URL = "https://elsewhere.example" // the URL is not part of the key
	_, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: []byte(`{}`), Provider: &other}, nil)
	if !errors.Is(err, store.ErrProviderLinkConflict) {
		t.Fatalf("CreateUser with a taken link: err = %v, want ErrProviderLinkConflict", err)
	}
	assertUser(t, mustGet(t, s, owner.ID), owner)
	assertIDs(t, listAll(t, s), owner.ID)
}

func testConflictOnUpdate(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	mustCreate(t, s, `{}`, link)
	u := mustCreate(t, s, `{"v":1}`, nil)
	taken := *link
	_, err := s.UpdateUser(t.Context(), u.ID, store.UserChange{
		SetClaims: true, Claims: []byte(`{"v":2}`), SetProvider: true, Provider: &taken,
	}, nil)
	if !errors.Is(err, store.ErrProviderLinkConflict) {
		t.Fatalf("UpdateUser to a taken link: err = %v, want ErrProviderLinkConflict", err)
	}
	// The whole change is rejected, claims included.
	assertUser(t, mustGet(t, s, u.ID), u)
}

func testSameSubjectOtherProvider(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	mustCreate(t, s, `{}`, link)
	other := *link
	other.ProviderID = newID(t)
	u := mustCreate(t, s, `{}`, &other)
	if !reflect.DeepEqual(mustGet(t, s, u.ID).Provider, &other) {
		t.Errorf("second user's link not stored")
	}
	// And the same provider with another subject.
	third := *link
	third.SubjectID = "another-subject"
	mustCreate(t, s, `{}`, &third)
}

func testUnlinkFreesLink(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	first := mustCreate(t, s, `{}`, link)
	mustUpdate(t, s, first.ID, store.UserChange{SetProvider: true})
	second := mustCreate(t, s, `{}`, nil)
	got := mustUpdate(t, s, second.ID, store.UserChange{SetProvider: true, Provider: link})
	if !reflect.DeepEqual(got.Provider, link) {
		t.Errorf("link not moved to the second user: %+v", got.Provider)
	}
	mustCreate(t, s, `{}`, nil) // unlinked users never conflict with each other
}

func testDeleteFreesLink(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	first := mustCreate(t, s, `{}`, link)
	if err := s.DeleteUser(t.Context(), first.ID, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	mustCreate(t, s, `{}`, link)
}

func testConcurrentCreateSameLink(t *testing.T, s store.Store, _ *Clock) {
	const n = 8
	link := newLink()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t)
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			l := *link
			_, errs[i] = s.CreateUser(t.Context(), store.User{ID: ids[i], Claims: []byte(`{}`), Provider: &l}, nil)
		})
	}
	close(start)
	wg.Wait()

	var winners []string
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, ids[i])
		case !errors.Is(err, store.ErrProviderLinkConflict):
			t.Errorf("goroutine %d: err = %v, want nil or ErrProviderLinkConflict", i, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d creates succeeded, want exactly 1", len(winners))
	}
	assertIDs(t, listAll(t, s), winners[0])
}

func testListPaging(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	if users, more, err := s.ListUsers(ctx, store.Page{Limit: 10}); err != nil || len(users) != 0 || more {
		t.Fatalf("empty store: %d users, more %v, err %v", len(users), more, err)
	}
	var want []string
	for i := range 5 {
		want = append(want, mustCreate(t, s, fmt.Sprintf(`{"n":%d}`, i), nil).ID)
	}
	for _, tc := range []struct {
		limit int
		pages []int // users on each page
	}{
		{limit: 2, pages: []int{2, 2, 1}},
		{limit: 5, pages: []int{5}}, // exactly full: no empty trailing page
		{limit: 6, pages: []int{5}},
		{limit: 1, pages: []int{1, 1, 1, 1, 1}},
	} {
		var got []string
		var after int64
		for i, size := range tc.pages {
			users, more := mustList(t, s, store.Page{Limit: tc.limit, AfterSeq: after})
			if len(users) != size || more != (i < len(tc.pages)-1) {
				t.Fatalf("limit %d, page %d: %d users, more %v; want %d, %v",
					tc.limit, i, len(users), more, size, i < len(tc.pages)-1)
			}
			for _, u := range users {
				if u.Seq <= after {
					t.Fatalf("limit %d: seq %d not after %d", tc.limit, u.Seq, after)
				}
				after = u.Seq
				got = append(got, u.ID)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: listed %v, want creation order %v", tc.limit, got, want)
		}
	}
	// The listed form is the stored form.
	users, _ := mustList(t, s, store.Page{Limit: 1})
	assertUser(t, users[0], mustGet(t, s, want[0]))
}

// Users created and deleted between pages: those present throughout are
// listed once each, deleted ones not yet reached are gone, new ones come
// last in creation order.
func testListUnderChurn(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	u := make([]store.User, 7)
	for i := range 6 {
		u[i] = mustCreate(t, s, `{}`, nil)
	}
	page1, _ := mustList(t, s, store.Page{Limit: 2})
	assertIDs(t, page1, u[0].ID, u[1].ID)
	for _, gone := range []store.User{u[1], u[2]} { // one listed, one not yet
		if err := s.DeleteUser(ctx, gone.ID, nil); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
	}
	u[6] = mustCreate(t, s, `{}`, nil)
	page2, _ := mustList(t, s, store.Page{Limit: 2, AfterSeq: u[1].Seq})
	assertIDs(t, page2, u[3].ID, u[4].ID)
	late := mustCreate(t, s, `{}`, nil)
	page3, more := mustList(t, s, store.Page{Limit: 10, AfterSeq: u[4].Seq})
	assertIDs(t, page3, u[5].ID, u[6].ID, late.ID)
	if more {
		t.Errorf("last page reports more")
	}
}

func testSeqNotReused(t *testing.T, s store.Store, _ *Clock) {
	mustCreate(t, s, `{}`, nil)
	last := mustCreate(t, s, `{}`, nil)
	if err := s.DeleteUser(t.Context(), last.ID, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	next := mustCreate(t, s, `{}`, nil)
	if next.Seq <= last.Seq {
		t.Errorf("Seq %d after deleting the user with Seq %d: reused", next.Seq, last.Seq)
	}
}

func testCursorKey(t *testing.T, s store.Store, _ *Clock) {
	k1, err := s.CursorKey(t.Context())
	if err != nil {
		t.Fatalf("CursorKey: %v", err)
	}
	if len(k1) != 32 || bytes.Equal(k1, make([]byte, 32)) {
		t.Fatalf("CursorKey = %x, want 32 random bytes", k1)
	}
	k2, err := s.CursorKey(t.Context())
	if err != nil {
		t.Fatalf("CursorKey: %v", err)
	}
	if !bytes.Equal(k1, k2) {
		t.Errorf("CursorKey changed between calls: %x, then %x", k1, k2)
	}
}

func testCursorKeyConcurrent(t *testing.T, s store.Store, _ *Clock) {
	keys := make([][]byte, 8)
	errs := make([]error, len(keys))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			<-start
			keys[i], errs[i] = s.CursorKey(t.Context())
		})
	}
	close(start)
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("CursorKey: %v", errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("concurrent first calls disagree: %x vs %x", keys[i], keys[0])
		}
	}
}

func testPing(t *testing.T, s store.Store, _ *Clock) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// newID returns a fresh user id as the service makes them.
func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatalf("uuid: %v", err)
	}
	return id.String()
}

// newLink returns a link no other test uses.
func newLink() *store.ProviderLink {
	return &store.ProviderLink{
		ProviderID: uuid.NewString(),
		URL:        "https://idp.example",
		SubjectID:  "subject-" + uuid.NewString(),
	}
}

func mustCreate(t *testing.T, s store.Store, claims string, link *store.ProviderLink) store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: []byte(claims), Provider: link}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func mustGet(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u, err := s.GetUser(t.Context(), id)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	return u
}

func mustUpdate(t *testing.T, s store.Store, id string, c store.UserChange) store.User {
	t.Helper()
	u, err := s.UpdateUser(t.Context(), id, c, nil)
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	return u
}

func mustList(t *testing.T, s store.Store, p store.Page) ([]store.User, bool) {
	t.Helper()
	users, more, err := s.ListUsers(t.Context(), p)
	if err != nil {
		t.Fatalf("ListUsers(%+v): %v", p, err)
	}
	return users, more
}

func listAll(t *testing.T, s store.Store) []store.User {
	t.Helper()
	users, more := mustList(t, s, store.Page{Limit: 1000})
	if more {
		t.Fatalf("more than 1000 users")
	}
	return users
}

func assertIDs(t *testing.T, users []store.User, want ...string) {
	t.Helper()
	got := make([]string, len(users))
	for i, u := range users {
		got[i] = u.ID
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("users %v, want %v", got, want)
	}
}

func assertUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || !bytes.Equal(got.Claims, want.Claims) || got.Seq != want.Seq ||
		!reflect.DeepEqual(got.Provider, want.Provider) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("user\n got  %s\n want %s", format(got), format(want))
	}
}

func format(u store.User) string {
	return fmt.Sprintf("{ID:%s Claims:%s Provider:%+v Seq:%d CreatedAt:%v UpdatedAt:%v}",
		u.ID, u.Claims, u.Provider, u.Seq, u.CreatedAt, u.UpdatedAt)
}

// assertTime checks that ts is the UTC time at, as the store's clock gave
// it. A store may round down, to no coarser than a millisecond.
func assertTime(t *testing.T, name string, ts, at time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Errorf("%s location %v, want UTC", name, ts.Location())
	}
	if ts.Before(at.Truncate(time.Millisecond)) || ts.After(at) {
		t.Errorf("%s = %v, want the clock's %v (to the millisecond)", name, ts, at)
	}
}
