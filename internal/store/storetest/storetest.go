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
	"encoding/json"
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
		{"claims_roundtrip_as_json", testClaimsRoundtrip},
		{"unlinked_user", testUnlinkedUser},
		{"missing_user", testMissingUser},
		{"delete", testDelete},
		{"update_claims_only", testUpdateClaimsOnly},
		{"update_provider_only", testUpdateProviderOnly},
		{"update_unlink_provider", testUpdateUnlink},
		{"update_nothing", testUpdateNothing},
		{"update_keeps_own_link", testUpdateKeepsOwnLink},
		{"version_counts_updates", testVersionCountsUpdates},
		{"update_if_version", testUpdateIfVersion},
		{"update_stale_version_writes_nothing", testUpdateStaleVersion},
		{"concurrent_updates_of_one_version", testConcurrentUpdatesOfOneVersion},
		{"delete_if_version", testDeleteIfVersion},
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
	for _, tc := range slices.Concat(userCases, eventCases, writeCases, concurrencyCases, searchCases) {
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
	created, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: `{"a":1}`, Provider: link}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if created.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", created.Seq)
	}
	if created.Version != 1 {
		t.Errorf("Version = %d, want 1", created.Version)
	}
	assertTime(t, "CreatedAt", created.CreatedAt, clock.Now())
	if !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", created.UpdatedAt, created.CreatedAt)
	}
	got := mustGet(t, s, created.ID)
	assertUser(t, got, created)
	assertClaims(t, got.Claims, `{"a":1}`)
	if !reflect.DeepEqual(got.Provider, link) {
		t.Errorf("stored provider %+v, want the one given", got.Provider)
	}
}

// Claims come back as the same JSON value, not necessarily the same bytes:
// keys in any order, any spacing, escapes resolved.
func testClaimsRoundtrip(t *testing.T, s store.Store, _ *Clock) {
	for _, claims := range []string{
		`{}`,
		`{"b":1,"a":{"z":[1,2.5,-3e-7,"x",null,true,{}],"y":null},"":false}`,
		`{"é":"ü \u2028 \"q\" \\ <&>","emoji":"\ud83d\ude00","n":9007199254740991}`,
		`{"deep":{"a":{"b":{"c":{"d":[[["x"]]]}}}},"empty":[],"s":""}`,
	} {
		u := mustCreate(t, s, claims, nil)
		assertClaims(t, u.Claims, claims)
		assertClaims(t, mustGet(t, s, u.ID).Claims, claims)
		updated := mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(claims)})
		assertClaims(t, updated.Claims, claims)
		users, _ := mustList(t, s, store.Page{Limit: 1, AfterSeq: u.Seq - 1})
		assertClaims(t, users[0].Claims, claims)
	}
}

func testUnlinkedUser(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{}`, nil)
	got := mustGet(t, s, u.ID)
	if got.Provider != nil {
		t.Errorf("got provider %+v, want nil", got.Provider)
	}
	assertClaims(t, got.Claims, `{}`)
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
	if err := s.DeleteUser(ctx, id, 0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser: err = %v, want ErrNotFound", err)
	}
	// A condition on the version does not make a missing user a mismatch.
	if _, err := s.UpdateUser(ctx, id, store.UserChange{SetClaims: true, Claims: []byte(`{}`), IfVersion: 1}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser with IfVersion: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, id, 1, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser with ifVersion: err = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	gone := mustCreate(t, s, `{}`, nil)
	kept := mustCreate(t, s, `{}`, nil)
	if err := s.DeleteUser(ctx, gone.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, gone.ID, 0, nil); !errors.Is(err, store.ErrNotFound) {
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
	want.Claims = `{"v":2}`
	want.Version = 2
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
	want.Version = 2
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
	assertClaims(t, got.Claims, `{"v":1}`)
	assertTime(t, "UpdatedAt", got.UpdatedAt, clock.Now())
	assertUser(t, mustGet(t, s, u.ID), got)
}

// An update that changes nothing still makes a new version (so that of two
// updates expecting one version only one applies), and keeps the rest of
// the user as it was, UpdatedAt included.
func testUpdateNothing(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, newLink())
	clock.Advance(time.Second)
	want := u
	want.Version = 2
	assertUser(t, mustUpdate(t, s, u.ID, store.UserChange{}), want)
	assertUser(t, mustGet(t, s, u.ID), want)
}

// Re-setting the link a user already has is not a conflict with itself.
func testUpdateKeepsOwnLink(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	u := mustCreate(t, s, `{}`, link)
	same := *link
	got := mustUpdate(t, s, u.ID, store.UserChange{SetProvider: true, Provider: &same, SetClaims: true, Claims: []byte(`{"x":1}`)})
	if !reflect.DeepEqual(got.Provider, link) {
		t.Errorf("got provider %+v, want %+v", got.Provider, link)
	}
	assertClaims(t, got.Claims, `{"x":1}`)
}

// Version is 1 on create and one more after every update, whatever it
// changes (nothing, too), and reads agree with what the update returned.
func testVersionCountsUpdates(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{}`, nil)
	if u.Version != 1 || mustGet(t, s, u.ID).Version != 1 {
		t.Fatalf("Version after create = %d, want 1", u.Version)
	}
	for i, c := range []store.UserChange{
		{SetClaims: true, Claims: []byte(`{"v":2}`)},
		{},
		{SetProvider: true, Provider: newLink()},
		{SetProvider: true},
		{SetClaims: true, Claims: []byte(`{"v":2}`)}, // the same claims again
		{},
	} {
		want := int64(i + 2)
		if got := mustUpdate(t, s, u.ID, c); got.Version != want {
			t.Fatalf("update %d returned Version %d, want %d", i, got.Version, want)
		}
		if got := mustGet(t, s, u.ID); got.Version != want {
			t.Fatalf("after update %d GetUser has Version %d, want %d", i, got.Version, want)
		}
	}
	if users, _ := mustList(t, s, store.Page{Limit: 1}); users[0].Version != 7 {
		t.Errorf("ListUsers has Version %d, want 7", users[0].Version)
	}
}

// An update expecting the user's current version applies like an
// unconditional one, empty ones too.
func testUpdateIfVersion(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, nil)
	clock.Advance(time.Millisecond)
	trail := trailOf("USER_UPDATE", "req-if-version")
	got, err := s.UpdateUser(t.Context(), u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`), IfVersion: 1}, trail)
	if err != nil {
		t.Fatalf("UpdateUser with the current version: %v", err)
	}
	want := u
	want.Claims, want.Version, want.UpdatedAt = `{"v":2}`, 2, got.UpdatedAt
	assertUser(t, got, want)
	assertTime(t, "UpdatedAt", got.UpdatedAt, clock.Now())
	assertEvents(t, allEvents(t, s), trail[1], trail[0])

	want.Version = 3
	assertUser(t, mustUpdate(t, s, u.ID, store.UserChange{IfVersion: 2}), want)
	assertUser(t, mustGet(t, s, u.ID), want)
}

// An update expecting another version than the user's fails with
// ErrVersionMismatch and writes nothing: not the change, not the version,
// not the trail. That holds for a version the user had, one it does not
// have yet, and one no user can have (the service asks with a negative one
// for an entity tag that can never match).
func testUpdateStaleVersion(t *testing.T, s store.Store, clock *Clock) {
	ctx := t.Context()
	link := newLink()
	u := mustCreate(t, s, `{"v":1}`, nil)
	u = mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)}) // version 2
	clock.Advance(time.Second)
	for _, stale := range []int64{1, 3, 1 << 40, -1} {
		for _, c := range []store.UserChange{
			{SetClaims: true, Claims: []byte(`{"v":"stale"}`), SetProvider: true, Provider: link, IfVersion: stale},
			{IfVersion: stale},
		} {
			_, err := s.UpdateUser(ctx, u.ID, c, trailOf("USER_UPDATE", "req-stale"))
			assertErr(t, fmt.Sprintf("UpdateUser with IfVersion %d", stale), err, store.ErrVersionMismatch)
		}
	}
	assertUser(t, mustGet(t, s, u.ID), u)
	assertEvents(t, allEvents(t, s))
	// The link the stale updates named was never taken.
	mustCreate(t, s, `{}`, link)
}

// Of concurrent updates that all expect the same version, exactly one
// applies (with its trail); every other fails with ErrVersionMismatch and
// leaves no trace.
func testConcurrentUpdatesOfOneVersion(t *testing.T, s store.Store, _ *Clock) {
	const n = 8
	u := mustCreate(t, s, `{}`, nil)
	trails := make([][]store.Event, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		trails[i] = trailOf("USER_UPDATE", fmt.Sprintf("req-%d", i))
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateUser(t.Context(), u.ID,
				store.UserChange{SetClaims: true, Claims: fmt.Appendf(nil, `{"winner":%d}`, i), IfVersion: u.Version}, trails[i])
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("updates %d and %d both applied to version %d", winner, i, u.Version)
		case !errors.Is(err, store.ErrVersionMismatch):
			t.Errorf("update %d: err = %v, want nil or ErrVersionMismatch", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no update applied")
	}
	got := mustGet(t, s, u.ID)
	if got.Version != u.Version+1 {
		t.Errorf("Version %d, want %d", got.Version, u.Version+1)
	}
	assertClaims(t, got.Claims, fmt.Sprintf(`{"winner":%d}`, winner))
	assertEvents(t, allEvents(t, s), trails[winner][1], trails[winner][0])
}

// A delete expecting another version than the user's fails with
// ErrVersionMismatch and leaves the user and no trail; one expecting its
// version deletes it.
func testDeleteIfVersion(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	u := mustCreate(t, s, `{}`, nil)
	u = mustUpdate(t, s, u.ID, store.UserChange{}) // version 2
	for _, stale := range []int64{1, 3, -1} {
		err := s.DeleteUser(ctx, u.ID, stale, trailOf("USER_DELETE", "req-stale"))
		assertErr(t, fmt.Sprintf("DeleteUser with ifVersion %d", stale), err, store.ErrVersionMismatch)
	}
	assertUser(t, mustGet(t, s, u.ID), u)
	assertEvents(t, allEvents(t, s))

	trail := trailOf("USER_DELETE", "req-current")
	if err := s.DeleteUser(ctx, u.ID, u.Version, trail); err != nil {
		t.Fatalf("DeleteUser with the current version: %v", err)
	}
	if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after delete: err = %v, want ErrNotFound", err)
	}
	assertEvents(t, allEvents(t, s), trail[1], trail[0])
}

func testConflictOnCreate(t *testing.T, s store.Store, _ *Clock) {
	link := newLink()
	owner := mustCreate(t, s, `{}`, link)
	other := *link
	other.URL = "https://elsewhere.example" // the URL is not part of the key
	_, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: `{}`, Provider: &other}, nil)
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
	if err := s.DeleteUser(t.Context(), first.ID, 0, nil); err != nil {
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
			_, errs[i] = s.CreateUser(t.Context(), store.User{ID: ids[i], Claims: `{}`, Provider: &l}, nil)
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
		if err := s.DeleteUser(ctx, gone.ID, 0, nil); err != nil {
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
	if err := s.DeleteUser(t.Context(), last.ID, 0, nil); err != nil {
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
	u, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: claims, Provider: link}, nil)
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
	if got.ID != want.ID || !SameJSON(got.Claims, want.Claims) || got.Seq != want.Seq || got.Version != want.Version ||
		!reflect.DeepEqual(got.Provider, want.Provider) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("user\n got  %s\n want %s", format(got), format(want))
	}
}

func format(u store.User) string {
	return fmt.Sprintf("{ID:%s Claims:%s Provider:%+v Seq:%d Version:%d CreatedAt:%v UpdatedAt:%v}",
		u.ID, u.Claims, u.Provider, u.Seq, u.Version, u.CreatedAt, u.UpdatedAt)
}

// assertClaims checks that got is the JSON value want.
func assertClaims(t *testing.T, got, want string) {
	t.Helper()
	if !SameJSON(got, want) {
		t.Errorf("claims %s, want the JSON value %s", got, want)
	}
}

// SameJSON reports whether a and b are one JSON value. Claims are equal by
// meaning, not bytes: PostgreSQL's jsonb reorders keys and respaces. Numbers
// compare as the doubles they are to the service.
func SameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
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
