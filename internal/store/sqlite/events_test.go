package sqlite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/storetest"
)

// The listings read the table or an index in (ts, id) order and stop
// after a page, so their cost does not grow with the number of events: no
// sort of every matching event. Lookups by request id or event id
// sort, but only the few events those select. With millions of events
// any other plan is a timeout, and nothing but the plan shows it on a
// small database.
func TestEventQueryPlans(t *testing.T) {
	s := openTemp(t)
	from, to := time.UnixMilli(1_000), time.UnixMilli(9_000)
	before := &store.EventPosition{Time: time.UnixMilli(5_000), ID: uuid.NewString()}
	for _, tc := range []struct {
		name   string
		f      store.EventFilter
		sorts  bool     // the plan may sort (the filter selects few events)
		seeks  bool     // no SCAN at all, not even of an index
		search []string // each must be in the plan
	}{
		{name: "newest", search: []string{"SCAN events"}},
		{name: "before", f: store.EventFilter{Before: before},
			search: []string{"PRIMARY KEY ((ts,id)<(?,?))"}},
		{name: "type", f: store.EventFilter{Types: []string{"USER_CREATE_SUCCESS"}, Before: before},
			search: []string{"events_type_ts (type=? AND outcome_type=? AND (ts,id)<(?,?))"}},
		{name: "types", f: store.EventFilter{Types: []string{"USER_CREATE_SUCCESS", "USER_DELETE_FAIL"}},
			search: []string{"MERGE (UNION)", "events_type_ts (type=? AND outcome_type=?)"}},
		{name: "from_to", f: store.EventFilter{From: &from, To: &to},
			search: []string{"PRIMARY KEY (ts>? AND ts<?)"}},
		// Deep into a bounded listing the range starts at Before, not at To.
		{name: "type_from_to_before", f: store.EventFilter{
			Types: []string{"USER_CREATE_SUCCESS"}, From: &from, To: &to, Before: before,
		},
			search: []string{"events_type_ts (type=? AND outcome_type=? AND ts>? AND (ts,id)<(?,?))"}},
		{name: "request_ids", f: store.EventFilter{RequestIDs: []string{"r1", "r2"}}, sorts: true, seeks: true,
			search: []string{"events_request_ts (request_id=?)"}},
		// Ids carrying their event's time are found by key, the others
		// through the index of their ids.
		{name: "ids", f: store.EventFilter{IDs: []string{uuid.NewString(), uuid.NewString()}}, sorts: true, seeks: true,
			search: []string{"MERGE (UNION)", "PRIMARY KEY (ts=? AND id=?)", "events_id (id=?)"}},
		{name: "ids_carrying_no_time", f: store.EventFilter{IDs: []string{"x", "y"}}, sorts: true, seeks: true,
			search: []string{"events_id (id=?)"}},
		// The type index would spare the sort, but could walk most of the
		// table for these few events.
		{name: "request_ids_types", sorts: true, seeks: true, f: store.EventFilter{
			RequestIDs: []string{"r1", "r2"}, Types: []string{"USER_CREATE_SUCCESS", "USER_DELETE_FAIL"},
		},
			search: []string{"events_request_ts (request_id=?)"}},
		{name: "request_id_type_from", sorts: true, seeks: true, f: store.EventFilter{
			RequestIDs: []string{"r1"}, Types: []string{"USER_CREATE_SUCCESS"}, From: &from,
		},
			search: []string{"events_request_ts (request_id=? AND ts>?)"}},
		{name: "ids_type", sorts: true, seeks: true, f: store.EventFilter{
			IDs: []string{uuid.NewString()}, Types: []string{"USER_CREATE_SUCCESS"},
		},
			search: []string{"PRIMARY KEY (ts=? AND id=?)", "events_id (id=?)"}},
		{name: "ids_request_ids_before", sorts: true, seeks: true, f: store.EventFilter{
			IDs: []string{uuid.NewString()}, RequestIDs: []string{"r1"}, Before: before,
		}},
		// The most the service accepts still merges index streams: a scan
		// and sort of every matching event would hold a reader for long.
		{name: "max_types", seeks: true, f: store.EventFilter{Types: words("TYPE", 100)},
			search: []string{"MERGE (UNION)", "events_type_ts (type=? AND outcome_type=?)"}},
		// A START type is three ranges, an outcome type two (typeBranches).
		{name: "max_start_types", seeks: true, f: store.EventFilter{Types: words("OP", 100, store.StartSuffix)},
			search: []string{"MERGE (UNION)", "events_type_ts (type=? AND outcome_type=?)"}},
		{name: "max_outcome_types", seeks: true, f: store.EventFilter{Types: words("OP", 100, store.FailSuffix)},
			search: []string{"MERGE (UNION)", "events_type_ts (type=? AND outcome_type=?)"}},
		{name: "max_types_from_before", seeks: true, f: store.EventFilter{
			Types: words("TYPE", 100), From: &from, Before: before,
		},
			search: []string{"MERGE (UNION)", "events_type_ts (type=? AND outcome_type=? AND ts>? AND (ts,id)<(?,?))"}},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			tc.f.Limit = 100
			query, args := eventsQuery(tc.f, tc.f.Limit+1)
			plan := queryPlan(t, s, query, args...)
			if !tc.sorts && strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("the listing sorts:\n%s", plan)
			}
			if tc.seeks && strings.Contains(plan, "SCAN events") {
				t.Errorf("the listing walks a whole index:\n%s", plan)
			}
			for _, want := range tc.search {
				if !strings.Contains(plan, want) {
					t.Errorf("plan lacks %q:\n%s", want, plan)
				}
			}
		})
	}
	t.Run("case=retention", func(t *testing.T) {
		plan := queryPlan(t, s, deleteOldEvents, 5_000, 100)
		if !strings.Contains(plan, "PRIMARY KEY (ts<?)") {
			t.Errorf("retention does not pick the oldest events in (ts, id) order:\n%s", plan)
		}
		// Then it deletes each by its key, not by a walk of the table.
		if strings.Contains(plan, "SCAN events") || !strings.Contains(plan, "PRIMARY KEY (ts=? AND id=?)") {
			t.Errorf("retention does not delete the events it picked by their key:\n%s", plan)
		}
	})
}

// words returns n distinct values with the given prefix, and suffix if
// given.
func words(prefix string, n int, suffix ...string) []string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("%s_%d%s", prefix, i, strings.Join(suffix, ""))
	}
	return w
}

// queryPlan returns the details of EXPLAIN QUERY PLAN, one per line.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// A limit below one is a caller's bug, and SQLite would read a negative
// LIMIT as none at all: delete every old event at once.
func TestDeleteEventsBeforeRejectsLimitBelowOne(t *testing.T) {
	s := openTemp(t)
	old := store.Event{ID: uuid.NewString(), Time: time.UnixMilli(1), Type: "T", Category: "c", Metadata: []byte(`{}`)}
	if err := s.AppendEvents(t.Context(), []store.Event{old}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, -1} {
		if n, err := s.DeleteEventsBefore(t.Context(), time.Now(), limit); err == nil || n != 0 {
			t.Errorf("DeleteEventsBefore(limit %d) = %d, %v; want 0 and an error", limit, n, err)
		}
	}
	if events, _, err := s.ListEvents(t.Context(), store.EventFilter{Limit: 10}); err != nil || len(events) != 1 {
		t.Errorf("after rejected deletes: %d events, err %v; want the 1 written", len(events), err)
	}
}

func TestListEventsRejectsNegativeLimit(t *testing.T) {
	s := openTemp(t)
	if _, _, err := s.ListEvents(t.Context(), store.EventFilter{Limit: -1}); err == nil {
		t.Error("ListEvents with limit -1: no error")
	}
}

// A trail event that cannot be stored undoes its mutation, and one event
// of a batch that cannot be stored keeps the whole batch out, wherever it
// falls. A trigger stands in for the failure.
func TestTrailAllOrNothing(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if _, err := s.w.ExecContext(ctx, `CREATE TEMP TRIGGER refuse BEFORE INSERT ON events
		WHEN NEW.type = 'REFUSED' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	refused := []store.Event{testEvent("USER_X_START"), testEvent("REFUSED")}

	id := uuid.NewString()
	if _, err := s.CreateUser(ctx, store.User{ID: id, Claims: `{}`}, refused); err == nil {
		t.Error("CreateUser with a refused trail: no error")
	}
	if _, err := s.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user created although its trail was not: GetUser err = %v", err)
	}
	u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: `{"v":1}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.UserChange{{SetClaims: true, Claims: []byte(`{"v":2}`)}, {}} {
		if _, err := s.UpdateUser(ctx, u.ID, c, refused); err == nil {
			t.Errorf("UpdateUser(%+v) with a refused trail: no error", c)
		}
	}
	if err := s.DeleteUser(ctx, u.ID, 0, refused); err == nil {
		t.Error("DeleteUser with a refused trail: no error")
	}
	if got, err := s.GetUser(ctx, u.ID); err != nil || got.Claims != `{"v":1}` {
		t.Errorf("user after refused mutations: %s, %v; want it unchanged", got.Claims, err)
	}
	if err := s.AppendEvents(ctx, refused); err == nil {
		t.Error("AppendEvents with a refused event: no error")
	}
	// Refused in the middle of a statement of many rows: the rows before
	// it in that statement go too.
	many := make([]store.Event, eventsPerInsert+3)
	for i := range many {
		many[i] = testEvent("USER_X_START")
	}
	many[eventsPerInsert/2].Type = "REFUSED"
	if err := s.AppendEvents(ctx, many); err == nil {
		t.Error("AppendEvents with a refused event among many: no error")
	}
	assertNoEvents(t, s)
}

// The migration that keys events by (ts, id) keeps every stored event,
// and so does its way back.
func TestEventsKeptByTheirMigration(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	want := make([]store.Event, 5)
	for i := range want {
		want[i] = store.Event{
			ID: uuid.Must(uuid.NewV7()).String(), Time: time.UnixMilli(int64(1_000 + i%2)).UTC(),
			Type: fmt.Sprintf("T%d", i%2), Category: "user", RequestID: fmt.Sprintf("r%d", i),
			ClientID: "c", Metadata: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		}
	}
	// And a START and its outcome, which share a row (00007).
	start, outcome := newPair("OP", store.SuccessSuffix)
	want = append(want, start, outcome)
	if err := s.AppendEvents(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, s); n != len(want)-1 {
		t.Fatalf("%d rows for %d events, one a pair: the START and its outcome do not share a row", n, len(want))
	}
	slices.SortFunc(want, func(a, b store.Event) int { return strings.Compare(a.ID, b.ID) })
	p := migrator(t, s.w)
	check := func(step string, got []store.Event) {
		t.Helper()
		slices.SortFunc(got, func(a, b store.Event) int { return strings.Compare(a.ID, b.ID) })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: events\n%v\nwant\n%v", step, got, want)
		}
	}
	list := func(step string) {
		t.Helper()
		got, _, err := s.ListEvents(ctx, store.EventFilter{Limit: 100})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		check(step, got)
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatalf("down: %v", err)
	}
	// Each event a row of its own, as the code of then reads them.
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	var back []store.Event
	for rows.Next() {
		var (
			e  store.Event
			ts int64
		)
		if err := rows.Scan(&e.ID, &ts, &e.Type, &e.Category, &e.RequestID, &e.ClientID, &e.Metadata); err != nil {
			t.Fatal(err)
		}
		e.Time = time.UnixMilli(ts).UTC()
		back = append(back, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	check("after the way back", back)
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	list("after the migration")
	// The id stays unique: the second write of an event is skipped.
	if err := s.AppendEvents(ctx, want[:1]); err != nil {
		t.Fatal(err)
	}
	list("after writing an event again")
}

// newPair returns a START of op and its outcome (suffix), as the service
// makes them within one millisecond: the outcome's id is the START's
// ids.Next.
func newPair(op, suffix string) (start, outcome store.Event) {
	id, ms := ids.NewV7Millis()
	start = store.Event{ID: id, Time: time.UnixMilli(ms).UTC(), Type: op + store.StartSuffix, Category: "user",
		RequestID: "r-pair", ClientID: "c", Metadata: []byte(`{"userId":"u"}`)}
	outcome = start
	outcome.ID, _ = ids.Next(id)
	outcome.Type, outcome.Metadata = op+suffix, []byte(`{"code":"NotFound","userId":"u"}`)
	return start, outcome
}

// rowCount is the number of rows in events.
func rowCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The events stored before ids carried their time are found by id after
// the migration, whether or not their ids happen to carry it; the events
// written since are in the index of ids only when their ids do not; and
// an event is still stored once, of either kind.
func TestEventIDsFoundAcrossTheirMigration(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	p := migrator(t, s.w)
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("down: %v", err)
	}
	event := func(ms int64, carried bool) store.Event {
		id := uuid.Must(uuid.NewV7()).String()
		if carried {
			ms, _ = ids.Millis(id)
		}
		return store.Event{ID: id, Time: time.UnixMilli(ms).UTC(), Type: "T", Category: "user",
			RequestID: "r", ClientID: "c", Metadata: []byte(`{}`)}
	}
	before := []store.Event{event(1_000, false), event(0, true)}
	for _, e := range before {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO events (`+eventColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.Time.UnixMilli(), e.Type, e.Category, e.RequestID, e.ClientID, string(e.Metadata)); err != nil {
			t.Fatalf("storing an event before the migration: %v", err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	since := []store.Event{event(2_000, false), event(0, true), event(0, true)}
	if err := s.AppendEvents(ctx, since); err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(before, since)
	if err := s.AppendEvents(ctx, all); err != nil { // each a second time
		t.Fatal(err)
	}
	for _, e := range all {
		got, _, err := s.ListEvents(ctx, store.EventFilter{IDs: []string{e.ID, uuid.NewString()}, Limit: 10})
		if err != nil || len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(e) {
			t.Errorf("listing event %s by id: %v, %v; want it once", e.ID, got, err)
		}
	}
	var indexed []string
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM events WHERE ts_in_id = 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		indexed = append(indexed, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{before[0].ID, before[1].ID, since[0].ID}
	slices.Sort(want)
	if !slices.Equal(indexed, want) {
		t.Errorf("events in the index of ids (ts_in_id = 0): %v, want %v (the events stored before, and the one whose id does not carry its time)", indexed, want)
	}
}

// Exactly the STARTs followed by their outcomes share a row; the near
// misses of the fixture are rows of their own.
func TestStartsShareARowWithTheirOutcomesOnly(t *testing.T) {
	s := openTemp(t)
	events := storetest.OutcomeFixture()
	if err := s.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if n, want := rowCount(t, s), len(events)-4; n != want {
		t.Errorf("%d rows for the fixture's %d events, want %d: four pairs", n, len(events), want)
	}
}

// Retention deletes rows, oldest first, and counts the events they held.
func TestDeleteEventsBeforeCountsBothEventsOfARow(t *testing.T) {
	s := openTemp(t)
	start, outcome := newPair("OP", store.FailSuffix)
	alone := start
	alone.ID, _ = ids.Prev(start.ID) // older, a row of its own
	alone.Type = "OTHER"
	if err := s.AppendEvents(t.Context(), []store.Event{alone, start, outcome}); err != nil {
		t.Fatal(err)
	}
	after := start.Time.Add(time.Millisecond)
	for _, want := range []int{1, 2, 0} {
		if n, err := s.DeleteEventsBefore(t.Context(), after, 1); err != nil || n != want {
			t.Fatalf("DeleteEventsBefore(1 row) = %d, %v; want %d events", n, err, want)
		}
	}
	if n := rowCount(t, s); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

// A START stored alone keeps its row; its outcome, written later with it,
// is stored alone, once.
func TestOutcomeOfAStartStoredAloneIsStored(t *testing.T) {
	s := openTemp(t)
	start, outcome := newPair("OP", store.SuccessSuffix)
	for _, batch := range [][]store.Event{{start}, {start, outcome}, {start, outcome}} {
		if err := s.AppendEvents(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := s.ListEvents(t.Context(), store.EventFilter{Limit: 10})
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]store.Event{outcome, start}) {
		t.Errorf("events %v, %v; want %v", got, err, []store.Event{outcome, start})
	}
	if n := rowCount(t, s); n != 2 {
		t.Errorf("%d rows, want 2: the START's, alone, and its outcome's", n)
	}
}

// An outcome that cannot be stored alone, after its START's row was found
// stored without it, fails the batch: none of it is stored.
func TestSkippedOutcomeRefusedKeepsTheBatchOut(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	start, outcome := newPair("OP", store.SuccessSuffix)
	if err := s.AppendEvents(ctx, []store.Event{start}); err != nil {
		t.Fatal(err)
	}
	// Only the outcome's own row is refused; the pair row is skipped anyway.
	if _, err := s.w.ExecContext(ctx, `CREATE TEMP TRIGGER refuse BEFORE INSERT ON events
		WHEN NEW.type = 'OP_SUCCESS' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	other := testEvent("OTHER")
	if err := s.AppendEvents(ctx, []store.Event{other, start, outcome}); err == nil {
		t.Fatal("AppendEvents with the outcome refused: no error")
	}
	got, _, err := s.ListEvents(ctx, store.EventFilter{Limit: 10})
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]store.Event{start}) {
		t.Errorf("events %v, %v; want only the START stored before", got, err)
	}
}

// A mutation's trail, its START and SUCCESS, shares a row as the writer's
// pairs do; when the writer stored the START first, the SUCCESS gets a
// row of its own, and a START the writer brings after the trail is
// skipped: each event is stored once, whichever comes first.
func TestTrailSharesARow(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name        string
		startBefore bool // the writer stores the START before the trail
		startAfter  bool // ... or after it
		rows        int
	}{
		{"case=trail alone", false, false, 1},
		{"case=START stored before", true, false, 2},
		{"case=START stored after", false, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			start, success := newPair("USER_CREATE", store.SuccessSuffix)
			if tc.startBefore {
				if err := s.AppendEvents(ctx, []store.Event{start}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.CreateUser(ctx, newUser(nil), []store.Event{start, success}); err != nil {
				t.Fatal(err)
			}
			if tc.startAfter {
				if err := s.AppendEvents(ctx, []store.Event{start}); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := s.ListEvents(ctx, store.EventFilter{Limit: 10})
			if err != nil || fmt.Sprint(got) != fmt.Sprint([]store.Event{success, start}) {
				t.Errorf("events %v, %v; want %v", got, err, []store.Event{success, start})
			}
			if n := rowCount(t, s); n != tc.rows {
				t.Errorf("%d rows, want %d", n, tc.rows)
			}
		})
	}
}
