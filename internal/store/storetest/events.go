package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/store"
)

// eventCases are the contract of analytic events: trails committed with
// their mutation, written once by id, batches, listing and retention.
var eventCases = []testCase{
	{"event_with_create", testEventWithCreate},
	{"event_with_update", testEventWithUpdate},
	{"event_with_empty_update", testEventWithEmptyUpdate},
	{"event_with_delete", testEventWithDelete},
	{"no_event_when_none_given", testNoEventWhenNoneGiven},
	{"failed_mutation_leaves_no_event", testFailedMutationLeavesNoEvent},
	{"trail_written_once", testTrailWrittenOnce},
	{"append_events_roundtrip", testAppendEvents},
	{"append_events_skips_stored_ids", testAppendEventsSkipsStoredIDs},
	{"append_events_big_batch", testAppendEventsBigBatch},
	{"list_events_order", testListEventsOrder},
	{"list_events_filters", testListEventsFilters},
	{"list_events_many_values", testListEventsManyValues},
	{"list_events_paging", testListEventsPaging},
	{"list_events_starts_with_outcomes", testListEventsStartsWithOutcomes},
	{"delete_events_before", testDeleteEventsBefore},
}

// eventBase is an arbitrary fixed instant, at millisecond precision as
// events are.
var eventBase = time.Date(2026, 11, 28, 13, 2, 5, 123_000_000, time.UTC)

// ms returns eventBase moved by n milliseconds.
func ms(n int) time.Time {
	return eventBase.Add(time.Duration(n) * time.Millisecond)
}

// trailOf is the START and SUCCESS events of one mutation.
func trailOf(op, requestID string) []store.Event {
	return []store.Event{
		newEvent(ms(0), op+"_START", "user", requestID),
		newEvent(ms(1), op+"_SUCCESS", "user", requestID),
	}
}

func testEventWithCreate(t *testing.T, s store.Store, _ *Clock) {
	trail := trailOf("USER_CREATE", "req-create")
	u, err := s.CreateUser(t.Context(), store.User{ID: newID(t), Claims: `{}`}, trail)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	mustGet(t, s, u.ID)
	assertEvents(t, allEvents(t, s), trail[1], trail[0])
}

func testEventWithUpdate(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{"v":1}`, nil)
	trail := trailOf("USER_UPDATE", "req-update")
	got, err := s.UpdateUser(t.Context(), u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)}, trail)
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	assertClaims(t, got.Claims, `{"v":2}`)
	assertUser(t, mustGet(t, s, u.ID), got)
	assertEvents(t, allEvents(t, s), trail[1], trail[0])
}

// An update that changes nothing still succeeds, so it still has its
// trail, and it leaves the user as it was but for its version.
func testEventWithEmptyUpdate(t *testing.T, s store.Store, clock *Clock) {
	u := mustCreate(t, s, `{"v":1}`, newLink())
	clock.Advance(time.Second)
	trail := trailOf("USER_UPDATE", "req-update")
	got, err := s.UpdateUser(t.Context(), u.ID, store.UserChange{}, trail)
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	u.Version++
	assertUser(t, got, u)
	assertUser(t, mustGet(t, s, u.ID), u)
	assertEvents(t, allEvents(t, s), trail[1], trail[0])
}

func testEventWithDelete(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{}`, nil)
	trail := trailOf("USER_DELETE", "req-delete")
	if err := s.DeleteUser(t.Context(), u.ID, 0, trail); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(t.Context(), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after delete: err = %v, want ErrNotFound", err)
	}
	assertEvents(t, allEvents(t, s), trail[1], trail[0])
}

func testNoEventWhenNoneGiven(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{}`, nil)
	mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)})
	mustUpdate(t, s, u.ID, store.UserChange{})
	if err := s.DeleteUser(t.Context(), u.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	assertEvents(t, allEvents(t, s))
}

// No event without its change: a mutation that fails writes no event.
func testFailedMutationLeavesNoEvent(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	link := newLink()
	mustCreate(t, s, `{}`, link)
	other := mustCreate(t, s, `{}`, nil)
	taken := *link
	missing := newID(t)
	trail := func() []store.Event { return trailOf("USER_X", "req") }

	_, err := s.CreateUser(ctx, store.User{ID: newID(t), Claims: `{}`, Provider: &taken}, trail())
	assertErr(t, "CreateUser with a taken link", err, store.ErrProviderLinkConflict)
	_, err = s.UpdateUser(ctx, other.ID, store.UserChange{SetProvider: true, Provider: &taken}, trail())
	assertErr(t, "UpdateUser to a taken link", err, store.ErrProviderLinkConflict)
	_, err = s.UpdateUser(ctx, missing, store.UserChange{SetClaims: true, Claims: []byte(`{}`)}, trail())
	assertErr(t, "UpdateUser of a missing user", err, store.ErrNotFound)
	_, err = s.UpdateUser(ctx, missing, store.UserChange{}, trail())
	assertErr(t, "empty UpdateUser of a missing user", err, store.ErrNotFound)
	err = s.DeleteUser(ctx, missing, 0, trail())
	assertErr(t, "DeleteUser of a missing user", err, store.ErrNotFound)
	_, err = s.UpdateUser(ctx, other.ID, store.UserChange{IfVersion: other.Version + 1}, trail())
	assertErr(t, "UpdateUser of another version", err, store.ErrVersionMismatch)
	err = s.DeleteUser(ctx, other.ID, other.Version+1, trail())
	assertErr(t, "DeleteUser of another version", err, store.ErrVersionMismatch)
	assertEvents(t, allEvents(t, s))
}

// A mutation's START is written twice, with the mutation and by the
// asynchronous writer, in either order: it is stored once, and neither
// write fails.
func testTrailWrittenOnce(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	early := trailOf("USER_CREATE", "req-early") // START written before the mutation
	appendEvents(t, s, early[0])
	u, err := s.CreateUser(ctx, store.User{ID: newID(t), Claims: `{}`}, early)
	if err != nil {
		t.Fatalf("CreateUser with a START already written: %v", err)
	}
	late := trailOf("USER_UPDATE", "req-late") // START written after it
	late[0].Time, late[1].Time = ms(10), ms(11)
	if _, err := s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"v":2}`)}, late); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	appendEvents(t, s, late[0])
	assertEvents(t, allEvents(t, s), late[1], late[0], early[1], early[0])
}

func testAppendEvents(t *testing.T, s store.Store, _ *Clock) {
	if err := s.AppendEvents(t.Context(), nil); err != nil {
		t.Fatalf("AppendEvents of no events: %v", err)
	}
	batch := []store.Event{
		newEvent(ms(0), "USER_CREATE_START", "user", "req-1"),
		newEvent(ms(1), "USER_CREATE_FAIL", "user", "req-1"),
		newEvent(ms(-1000), "USER_SEARCH_SUCCESS", "other", "req-2"),
	}
	batch[1].Metadata = []byte(`{"code":"NotFound","userId":"` + uuid.NewString() + `"}`)
	batch[2].Metadata = []byte(`{}`)
	if err := s.AppendEvents(t.Context(), batch); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	assertEvents(t, allEvents(t, s), batch[1], batch[0], batch[2])
}

// An event whose id is stored already is skipped: the stored one stays as
// it is, and the rest of the batch is written.
func testAppendEventsSkipsStoredIDs(t *testing.T, s store.Store, _ *Clock) {
	first := newEvent(ms(0), "USER_CREATE_START", "user", "req-1")
	appendEvents(t, s, first)
	dup := newEvent(ms(2), "USER_CREATE_START", "user", "req-2")
	dup.ID = first.ID
	other := newEvent(ms(1), "USER_GET_START", "user", "req-2")
	appendEvents(t, s, other, dup)
	assertEvents(t, allEvents(t, s), other, first)
}

// A batch of hundreds is written whole, every field of every event, and
// the events stored already are skipped wherever they fall in it: a store
// may write a batch many rows to a statement.
func testAppendEventsBigBatch(t *testing.T, s store.Store, _ *Clock) {
	batch := make([]store.Event, 300)
	for i := range batch {
		batch[i] = newEvent(ms(i), fmt.Sprintf("T%d", i%3), "user", fmt.Sprintf("req-%d", i%7))
	}
	var stored []store.Event
	for _, i := range []int{0, 1, 31, 32, 33, 150, 299} {
		e := newEvent(ms(-1-i), "STORED", "user", "req-stored")
		e.ID = batch[i].ID
		stored = append(stored, e)
	}
	appendEvents(t, s, stored...)
	appendEvents(t, s, batch...)
	want := slices.Clone(stored)
	for _, e := range batch {
		if !slices.ContainsFunc(stored, func(st store.Event) bool { return st.ID == e.ID }) {
			want = append(want, e)
		}
	}
	assertEvents(t, allEvents(t, s), sortedNewestFirst(want)...)
}

// Newest first, and among events of the same millisecond by id,
// descending, whatever the order they were written in.
func testListEventsOrder(t *testing.T, s store.Store, _ *Clock) {
	var events []store.Event
	for i, at := range []int{0, 5, 5, 5, -3, 5, 0, 7} {
		events = append(events, newEvent(ms(at), fmt.Sprintf("T%d", i), "user", "req"))
	}
	appendEvents(t, s, events...)
	assertEvents(t, allEvents(t, s), sortedNewestFirst(events)...)
}

func testListEventsFilters(t *testing.T, s store.Store, _ *Clock) {
	all := filterFixture()
	appendEvents(t, s, all...)
	// Half a millisecond into an instant that has events: the inclusive
	// bounds then hold for the events of the next (From) or this (To)
	// millisecond only.
	t5, t5half, t3, t8 := ms(5), ms(5).Add(500*time.Microsecond), ms(3), ms(8)
	for _, tc := range []struct {
		name  string
		f     store.EventFilter
		count int // of matching events, worked out by hand
	}{
		{"none", store.EventFilter{}, 36},
		{"ids", store.EventFilter{IDs: []string{all[3].ID, all[17].ID, all[30].ID, uuid.NewString()}}, 3},
		{"request_id", store.EventFilter{RequestIDs: []string{"req-b"}}, 9},
		{"request_ids", store.EventFilter{RequestIDs: []string{"req-b", "req-d"}}, 18},
		{"type", store.EventFilter{Types: []string{"T1"}}, 12},
		{"types", store.EventFilter{Types: []string{"T1", "T2"}}, 24},
		{"repeated_type", store.EventFilter{Types: []string{"T1", "T1"}}, 12},
		{"type_and_request_ids", store.EventFilter{Types: []string{"T1"}, RequestIDs: []string{"req-a", "req-c"}}, 6},
		{"from_inclusive", store.EventFilter{From: &t5}, 21},
		{"to_inclusive", store.EventFilter{To: &t5}, 18},
		{"from_to_same_ms", store.EventFilter{From: &t5, To: &t5}, 3},
		{"from_to", store.EventFilter{From: &t3, To: &t8}, 18},
		{"from_within_ms", store.EventFilter{From: &t5half}, 18},
		{"to_within_ms", store.EventFilter{To: &t5half}, 18},
		{"before", store.EventFilter{Before: positionOf(all[16])}, 16},
		{"type_before", store.EventFilter{Types: []string{"T1"}, Before: positionOf(all[16])}, 5},
		{"to_above_before", store.EventFilter{To: &t8, Before: positionOf(all[16])}, 16},
		{"to_below_before", store.EventFilter{To: &t5, Before: positionOf(all[30])}, 18},
		{"all_filters", store.EventFilter{
			IDs:        idsOf(all[4:30]),
			RequestIDs: []string{"req-a", "req-b", "req-c"},
			Types:      []string{"T0"},
			From:       &t3, To: &t8, Before: positionOf(all[25]),
		}, 5},
		{"no_match", store.EventFilter{Types: []string{"NONE"}}, 0},
	} {
		t.Run("filter="+tc.name, func(t *testing.T) {
			want := wantEvents(all, tc.f)
			if len(want) != tc.count {
				t.Fatalf("the reference filter selects %d events, the hand count is %d", len(want), tc.count)
			}
			f := tc.f
			f.Limit = len(all) + 1
			got, more := mustListEvents(t, s, f)
			if more {
				t.Errorf("more = true with a limit above the number of events")
			}
			assertEvents(t, got, want...)
			// And the same events page by page.
			assertEvents(t, listPaged(t, s, tc.f, 2), want...)
		})
	}
}

// filterFixture is 36 events, three per millisecond over 12 ms. Type
// (T0..T2), category and request id cycle with different periods, so
// every combination of type and request id occurs. The ids are fixed, for
// counts by hand, and end shuffled (i*7 mod 36), so that their order
// within a millisecond is not the order of writing. Half of them, as
// UUIDv7s, carry the event's millisecond, as the service's do; a quarter
// carry the next millisecond, and a quarter none (a store may find the
// events of each kind by id in its own way).
func filterFixture() []store.Event {
	categories := []string{"user", "admin", "system"}
	requests := []string{"req-a", "req-b", "req-c", "req-d"}
	events := make([]store.Event, 36)
	for i := range events {
		at := ms(i / 3)
		events[i] = newEvent(at, fmt.Sprintf("T%d", i%3), categories[i/3%3], requests[i%4])
		var carried int64
		switch i % 4 {
		case 0, 2:
			carried = at.UnixMilli()
		case 1:
			carried = at.UnixMilli() + 1
		}
		events[i].ID = fmt.Sprintf("%08x-%04x-7000-8000-%012d", carried>>16, carried&0xffff, i*7%36)
	}
	return events
}

// Filters may name many values (a backend may plan such a query
// differently).
func testListEventsManyValues(t *testing.T, s store.Store, _ *Clock) {
	all := filterFixture()
	appendEvents(t, s, all...)
	f := store.EventFilter{Types: []string{"T2"}, RequestIDs: []string{"req-a", "req-b"}}
	for i := range 1000 {
		f.Types = append(f.Types, fmt.Sprintf("UNUSED_TYPE_%d", i))
		f.IDs = append(f.IDs, uuid.NewString())
		f.RequestIDs = append(f.RequestIDs, fmt.Sprintf("unused-request-%d", i))
	}
	f.IDs = append(f.IDs, idsOf(all)...)
	want := wantEvents(all, f)
	if len(want) == 0 {
		t.Fatal("the filter selects nothing; the test would prove little")
	}
	assertEvents(t, listPaged(t, s, f, 4), want...)
}

// Keyset paging goes through runs of events in the same millisecond
// without skipping or repeating any, and reports more exactly: no page
// is empty.
func testListEventsPaging(t *testing.T, s store.Store, _ *Clock) {
	var events []store.Event
	for _, at := range []int{0, 0, 0, 1, 2, 2, 2, 2, 3} {
		events = append(events, newEvent(ms(at), "T", "user", "req"))
	}
	appendEvents(t, s, events...)
	want := sortedNewestFirst(events)
	for limit := 1; limit <= len(events)+1; limit++ {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			assertEvents(t, listPaged(t, s, store.EventFilter{}, limit), want...)
		})
	}
}

// A START and its outcome whose id follows it (ids.Next), which the
// service makes within one millisecond and a store may keep together,
// are listed as two events in the order of their ids, by every filter and
// across pages, like the near misses beside them.
func testListEventsStartsWithOutcomes(t *testing.T, s store.Store, _ *Clock) {
	all := OutcomeFixture()
	appendEvents(t, s, all...)
	byType := func(types ...string) store.EventFilter { return store.EventFilter{Types: types} }
	byID := func(events ...store.Event) store.EventFilter { return store.EventFilter{IDs: idsOf(events)} }
	t2 := ms(2)
	filters := map[string]store.EventFilter{
		"none":                  {},
		"start":                 byType("OP_A_START"),
		"success":               byType("OP_A_SUCCESS"),
		"fail":                  byType("OP_A_FAIL"),
		"start_and_other_fail":  byType("OP_A_START", "OP_B_FAIL"),
		"unrelated_type":        byType("OTHER"),
		"start_id":              byID(all[0]),
		"outcome_id":            byID(all[1]),
		"pair_ids":              byID(all[0], all[1]),
		"outcome_id_start_type": {IDs: idsOf(all[1:2]), Types: []string{"OP_A_START"}},
		"ids_and_type":          {IDs: idsOf(all), Types: []string{"OP_B_FAIL", "OP_A_START"}},
		"request_id":            {RequestIDs: []string{"req-1"}},
		"request_id_and_type":   {RequestIDs: []string{"req-1", "req-2"}, Types: []string{"OP_A_SUCCESS"}},
		"to":                    {To: &t2},
	}
	for i, e := range all {
		filters[fmt.Sprintf("before_%02d", i)] = store.EventFilter{Before: positionOf(e)}
		filters[fmt.Sprintf("start_before_%02d", i)] = store.EventFilter{Types: []string{"OP_A_START"}, Before: positionOf(e)}
		filters[fmt.Sprintf("success_before_%02d", i)] = store.EventFilter{Types: []string{"OP_A_SUCCESS"}, Before: positionOf(e)}
	}
	for name, f := range filters {
		t.Run("filter="+name, func(t *testing.T) {
			want := wantEvents(all, f)
			for _, limit := range []int{1, 2, 3, len(all) + 1} {
				assertEvents(t, listPaged(t, s, f, limit), want...)
			}
		})
	}
	// Written again, alone or together, each event is still listed once.
	appendEvents(t, s, all[0])
	appendEvents(t, s, all[:2]...)
	assertEvents(t, allEvents(t, s), sortedNewestFirst(all)...)
	if got := wantEvents(all, byType("OP_A_START")); len(got) != 7 {
		t.Errorf("the fixture has %d OP_A_STARTs, the hand count is 7", len(got))
	}
}

// OutcomeFixture is 22 events over four milliseconds: STARTs each
// followed by its outcome (SUCCESS or FAIL), the outcome's id the
// START's ids.Next, with events whose ids sort right around them; and
// near misses a store must keep apart: an outcome of another request, of
// another operation, or of another time, one whose id does not follow,
// one written before its START, and a START whose id has no Next. It
// returns them in the order they are written.
func OutcomeFixture() []store.Event {
	id := func(at time.Time, bits uint64) string {
		carried := at.UnixMilli()
		return fmt.Sprintf("%08x-%04x-7000-%04x-%012x", carried>>16, carried&0xffff, 0x8000|bits>>48, bits&(1<<48-1))
	}
	var events []store.Event
	pair := func(at time.Time, bits uint64, op, outcome string) {
		start := newEvent(at, op+"_START", "user", "req-1")
		start.ID, start.ClientID = id(at, bits), "client-1"
		o := start
		o.ID, _ = ids.Next(start.ID)
		o.Type, o.Metadata = op+outcome, fmt.Appendf(nil, `{"code":"NotFound","n":%d}`, len(events))
		events = append(events, start, o)
	}
	alone := func(at time.Time, bits uint64, typ, requestID string) {
		e := newEvent(at, typ, "user", requestID)
		e.ID, e.ClientID = id(at, bits), "client-1" // as pair's
		events = append(events, e)
	}
	pair(ms(0), 0x10, "OP_A", "_SUCCESS") // events 0 and 1
	alone(ms(0), 0x0f, "OTHER", "req-1")  // right below the START
	alone(ms(0), 0x12, "OTHER", "req-2")  // right above the outcome
	pair(ms(0), 0x20, "OP_A", "_FAIL")
	pair(ms(1), 0x10, "OP_B", "_FAIL")
	// An outcome whose id follows its START's, but of another request,
	// then of another operation.
	alone(ms(1), 0x30, "OP_A_START", "req-1")
	alone(ms(1), 0x31, "OP_A_SUCCESS", "req-2")
	alone(ms(1), 0x40, "OP_A_START", "req-1")
	alone(ms(1), 0x41, "OP_B_SUCCESS", "req-1")
	// An outcome written before its START.
	alone(ms(2), 0x11, "OP_A_SUCCESS", "req-1")
	alone(ms(2), 0x10, "OP_A_START", "req-1")
	// A START whose random bits are all ones, and the next id's event.
	alone(ms(2), 1<<62-1, "OP_A_START", "req-1")
	alone(ms(2), 0x50, "OP_A_SUCCESS", "req-1")
	// An outcome of the START's time whose id does not follow it.
	alone(ms(2), 0x60, "OP_B_START", "req-2")
	alone(ms(2), 0x62, "OP_B_SUCCESS", "req-2")
	// One whose id follows, but of a later time than its START's.
	alone(ms(2), 0x70, "OP_B_START", "req-2")
	alone(ms(2), 0x71, "OP_B_SUCCESS", "req-2")
	events[len(events)-1].Time = ms(3)
	// The newest, so that a page ending at its SUCCESS leaves older
	// SUCCESSes to list.
	pair(ms(3), 0x10, "OP_A", "_SUCCESS")
	return events
}

func testDeleteEventsBefore(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	cut := ms(10)
	oldest := []store.Event{newEvent(ms(5), "T", "user", "r"), newEvent(ms(5), "T", "user", "r"), newEvent(ms(5), "T", "user", "r")}
	older := []store.Event{newEvent(ms(8), "T", "user", "r"), newEvent(ms(9), "T", "user", "r")}
	atCut := []store.Event{newEvent(cut, "T", "user", "r"), newEvent(cut, "T", "user", "r")}
	newer := newEvent(ms(11), "T", "user", "r")
	appendEvents(t, s, slices.Concat(older, atCut, []store.Event{newer}, oldest)...)

	deleteBefore := func(at time.Time, limit, want int) {
		t.Helper()
		n, err := s.DeleteEventsBefore(ctx, at, limit)
		if err != nil || n != want {
			t.Fatalf("DeleteEventsBefore(%v, %d) = %d, %v; want %d", at, limit, n, err, want)
		}
	}
	// Oldest first: the first batch takes two of the three oldest.
	deleteBefore(cut, 2, 2)
	got := allEvents(t, s)
	if len(got) != 6 || !got[5].Time.Equal(ms(5)) {
		t.Fatalf("after deleting 2 of the oldest: %d events left; want 6, the last of them one of the oldest", len(got))
	}
	assertEvents(t, got[:5], sortedNewestFirst(slices.Concat([]store.Event{newer}, atCut, older))...)
	// Repeated calls finish the job, then find nothing to do.
	deleteBefore(cut, 2, 2)
	deleteBefore(cut, 2, 1)
	deleteBefore(cut, 2, 0)
	assertEvents(t, allEvents(t, s), sortedNewestFirst(slices.Concat(atCut, []store.Event{newer}))...)
	// An event in t's millisecond but before t is older than t.
	deleteBefore(cut.Add(500*time.Microsecond), 100, 2)
	assertEvents(t, allEvents(t, s), newer)
}

// newEvent returns an event with every field set; id, client and metadata
// are unique. Ids are random (not time-ordered), so that their order
// within a millisecond differs from the order of writing.
func newEvent(at time.Time, typ, category, requestID string) store.Event {
	return store.Event{
		ID:        uuid.NewString(),
		Time:      at,
		Type:      typ,
		Category:  category,
		RequestID: requestID,
		ClientID:  "client-" + uuid.NewString(),
		Metadata:  fmt.Appendf(nil, `{"entriesCount":3,"userId":%q}`, uuid.NewString()),
	}
}

func appendEvents(t *testing.T, s store.Store, events ...store.Event) {
	t.Helper()
	if err := s.AppendEvents(t.Context(), events); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
}

func mustListEvents(t *testing.T, s store.Store, f store.EventFilter) ([]store.Event, bool) {
	t.Helper()
	events, more, err := s.ListEvents(t.Context(), f)
	if err != nil {
		t.Fatalf("ListEvents(%+v): %v", f, err)
	}
	return events, more
}

// allEvents lists every stored event in one page.
func allEvents(t *testing.T, s store.Store) []store.Event {
	t.Helper()
	events, more := mustListEvents(t, s, store.EventFilter{Limit: 1000})
	if more {
		t.Fatalf("more than 1000 events")
	}
	return events
}

// listPaged lists what f selects in pages of limit events, each page
// continuing before the last event of the previous one. It fails on an
// empty page: more must not promise a page that holds nothing.
func listPaged(t *testing.T, s store.Store, f store.EventFilter, limit int) []store.Event {
	t.Helper()
	f.Limit = limit
	var all []store.Event
	for page := 0; ; page++ {
		events, more := mustListEvents(t, s, f)
		if len(events) > limit {
			t.Fatalf("page %d: %d events, limit %d", page, len(events), limit)
		}
		if len(events) == 0 && page > 0 {
			t.Fatalf("page %d is empty, but the previous page reported more", page)
		}
		all = append(all, events...)
		if !more {
			return all
		}
		if len(events) < limit {
			t.Fatalf("page %d: %d events, less than the limit %d, and more = true", page, len(events), limit)
		}
		if page > 1000 {
			t.Fatalf("more than 1000 pages: paging does not advance")
		}
		f.Before = positionOf(events[len(events)-1])
	}
}

// wantEvents is the reference listing: the events of all that f selects,
// newest first, whatever f.Limit.
func wantEvents(all []store.Event, f store.EventFilter) []store.Event {
	var r []store.Event
	for _, e := range all {
		if selects(f, e) {
			r = append(r, e)
		}
	}
	return sortedNewestFirst(r)
}

// selects is store.EventFilter's documented meaning, written out.
func selects(f store.EventFilter, e store.Event) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(len(f.IDs) == 0 || slices.Contains(f.IDs, e.ID)) &&
		(len(f.RequestIDs) == 0 || slices.Contains(f.RequestIDs, e.RequestID)) &&
		(f.From == nil || !e.Time.Before(*f.From)) &&
		(f.To == nil || !e.Time.After(*f.To)) &&
		(f.Before == nil || newestFirst(store.Event{Time: f.Before.Time, ID: f.Before.ID}, e) < 0)
}

// newestFirst orders events by Time, then ID, both descending.
func newestFirst(a, b store.Event) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

func sortedNewestFirst(events []store.Event) []store.Event {
	return slices.SortedFunc(slices.Values(events), newestFirst)
}

func positionOf(e store.Event) *store.EventPosition {
	return &store.EventPosition{Time: e.Time, ID: e.ID}
}

func idsOf(events []store.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// assertEvents checks that got holds the events of want, in that order,
// every field as written and Time in UTC.
func assertEvents(t *testing.T, got []store.Event, want ...store.Event) {
	t.Helper()
	if !slices.Equal(idsOf(got), idsOf(want)) {
		t.Errorf("events\n got  %v\n want %v", idsOf(got), idsOf(want))
		return
	}
	for i, g := range got {
		w := want[i]
		if g.Type != w.Type || g.Category != w.Category || g.RequestID != w.RequestID ||
			g.ClientID != w.ClientID || !bytes.Equal(g.Metadata, w.Metadata) ||
			!g.Time.Equal(w.Time) || g.Time.Location() != time.UTC {
			t.Errorf("event %d\n got  %+v\n want %+v", i, formatEvent(g), formatEvent(w))
		}
	}
}

func assertErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func formatEvent(e store.Event) string {
	return fmt.Sprintf("{ID:%s Time:%v Type:%s Category:%s RequestID:%s ClientID:%s Metadata:%s}",
		e.ID, e.Time, e.Type, e.Category, e.RequestID, e.ClientID, e.Metadata)
}
