package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/store"
)

// memSink collects recorded events and counts the room held for
// outcomes; refuse makes Start fail.
type memSink struct {
	mu        sync.Mutex
	evs       []store.Event
	committed []string // START ids of calls the store committed
	held      int
	refuse    error
}

func (m *memSink) Start(_ context.Context, ev store.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse != nil {
		return m.refuse
	}
	m.evs = append(m.evs, ev)
	m.held++
	return nil
}

func (m *memSink) End(ev *store.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held--
	if ev != nil {
		m.evs = append(m.evs, *ev)
	}
}

func (m *memSink) Committed(startID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held--
	m.committed = append(m.committed, startID)
}

func (m *memSink) types() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ev := range m.evs {
		out = append(out, ev.Type)
	}
	return out
}

func meta(t *testing.T, ev store.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type getReq struct{ id string }

func (r getReq) GetId() string { return r.id }

const method = "/users.v1.UserService/GetUser"

func callCtx() context.Context {
	ctx := requestid.NewContext(context.Background(), "req-1")
	return auth.NewContext(ctx, auth.Principal{Subject: "client-a", Roles: []string{auth.RoleAdmin}})
}

func TestInterceptorRecordsStartAndOutcome(t *testing.T) {
	const id = "0190A7C2-7E3B-7C41-9F3E-2B1C4D5E6F70"
	for _, tc := range []struct {
		name      string
		handler   grpc.UnaryHandler
		wantTypes []string
		wantCode  string
		committed bool
	}{
		{"case=success recorded by the interceptor", func(ctx context.Context, _ any) (any, error) {
			SetUserID(ctx, "u")
			return "ok", nil
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_SUCCESS"}, "", false},
		{"case=failure with the contract's code word", func(context.Context, any) (any, error) {
			return nil, status.Error(codes.NotFound, "User not found")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "NotFound", false},
		{"case=forbidden", func(context.Context, any) (any, error) {
			return nil, status.Error(codes.PermissionDenied, "no")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "Forbidden", false},
		{"case=success taken into the transaction is not recorded again", func(ctx context.Context, _ any) (any, error) {
			trail := TrailInTransaction(ctx, "u-1")
			if len(trail) != 2 || trail[0].Type != "USER_RETRIEVE_START" || trail[1].Type != "USER_RETRIEVE_SUCCESS" ||
				!strings.Contains(string(trail[1].Metadata), `"userId":"u-1"`) {
				t.Errorf("TrailInTransaction = %+v", trail)
			}
			return "ok", nil
		}, []string{"USER_RETRIEVE_START"}, "", true},
		{"case=failed transaction records FAIL", func(ctx context.Context, _ any) (any, error) {
			TrailInTransaction(ctx, "u-1")
			return nil, status.Error(codes.AlreadyExists, "taken")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "Conflict", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{}
			rec := NewRecorder(Ops{method: "USER_RETRIEVE"}, sink)
			_, _ = rec.UnaryServerInterceptor()(callCtx(), getReq{id: id}, &grpc.UnaryServerInfo{FullMethod: method}, tc.handler)
			got := sink.types()
			if len(got) != len(tc.wantTypes) {
				t.Fatalf("events %v, want %v", got, tc.wantTypes)
			}
			for i := range got {
				if got[i] != tc.wantTypes[i] {
					t.Fatalf("events %v, want %v", got, tc.wantTypes)
				}
			}
			start := sink.evs[0]
			if start.RequestID != "req-1" || start.ClientID != "client-a" || start.Category != CategoryUser {
				t.Fatalf("start event %+v", start)
			}
			if m := meta(t, start); m[KeyUserID] != "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70" {
				t.Fatalf("start metadata %v", m)
			}
			if tc.wantCode != "" {
				if m := meta(t, sink.evs[len(sink.evs)-1]); m[KeyCode] != tc.wantCode {
					t.Fatalf("fail metadata %v", m)
				}
			}
			if sink.held != 0 {
				t.Fatalf("%d outcome slots still held after the call", sink.held)
			}
			// Only a call whose store committed its trail says so, naming
			// its START, which the writer need not write again.
			wantCommitted := []string(nil)
			if tc.committed {
				wantCommitted = []string{start.ID}
			}
			if !slices.Equal(sink.committed, wantCommitted) {
				t.Fatalf("committed %v, want %v", sink.committed, wantCommitted)
			}
		})
	}
}

// An outcome within its START's millisecond takes the id after the
// START's (ids.Next), which a store may keep in the START's row; a later
// one is an event of its own time.
func TestOutcomeIDFollowsItsStartsWithinItsMillisecond(t *testing.T) {
	call := func(handler grpc.UnaryHandler) (start, outcome store.Event) {
		t.Helper()
		sink := &memSink{}
		rec := NewRecorder(Ops{method: "USER_RETRIEVE"}, sink)
		_, _ = rec.UnaryServerInterceptor()(callCtx(), getReq{}, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		if len(sink.evs) != 2 {
			t.Fatalf("events %v, want a START and its outcome", sink.types())
		}
		return sink.evs[0], sink.evs[1]
	}
	quick := func(context.Context, any) (any, error) { return "ok", nil }
	// The clock may turn a millisecond during the call; it cannot every
	// time.
	for attempt := 0; ; attempt++ {
		start, outcome := call(quick)
		if !outcome.Time.Equal(start.Time) {
			if attempt == 100 {
				t.Fatal("no call of 100 ended within its START's millisecond")
			}
			continue
		}
		if next, _ := ids.Next(start.ID); outcome.ID != next {
			t.Errorf("outcome %s within its START's millisecond, START %s: want the id after it, %s", outcome.ID, start.ID, next)
		}
		break
	}
	slow := func(ctx context.Context, _ any) (any, error) {
		for ms := time.Now().UnixMilli(); time.Now().UnixMilli() == ms; {
			runtime.Gosched() // until the clock turns a millisecond
		}
		return nil, status.Error(codes.NotFound, "User not found")
	}
	start, outcome := call(slow)
	if ms, _ := ids.Millis(outcome.ID); !outcome.Time.After(start.Time) || ms != outcome.Time.UnixMilli() {
		t.Errorf("outcome %s at %v after START %s at %v: want an id of its own, later, time", outcome.ID, outcome.Time, start.ID, start.Time)
	}
}

// The START a mutation commits is the very event queued (same id), so
// the store writes it once.
func TestTrailCarriesTheQueuedStart(t *testing.T) {
	sink := &memSink{}
	rec := NewRecorder(Ops{method: "USER_RETRIEVE"}, sink)
	var trail []store.Event
	_, _ = rec.UnaryServerInterceptor()(callCtx(), getReq{}, &grpc.UnaryServerInfo{FullMethod: method},
		func(ctx context.Context, _ any) (any, error) {
			trail = TrailInTransaction(ctx, "u-1")
			return "ok", nil
		})
	if len(sink.evs) != 1 || len(trail) != 2 || trail[0].ID != sink.evs[0].ID || trail[0].Type != sink.evs[0].Type {
		t.Fatalf("queued %+v, trail %+v", sink.evs, trail)
	}
}

// When START cannot be queued the call fails with UNAVAILABLE without
// running, and leaves no event.
func TestInterceptorRefusesWhenStartFails(t *testing.T) {
	sink := &memSink{refuse: ErrBufferFull}
	rec := NewRecorder(Ops{method: "USER_RETRIEVE"}, sink)
	ran := false
	_, err := rec.UnaryServerInterceptor()(callCtx(), getReq{}, &grpc.UnaryServerInfo{FullMethod: method},
		func(context.Context, any) (any, error) { ran = true; return "ok", nil })
	if status.Code(err) != codes.Unavailable || ran || len(sink.evs) != 0 {
		t.Fatalf("err %v, handler ran %v, events %v; want UNAVAILABLE, not run, none", err, ran, sink.types())
	}
}

// A handler that panics past the interceptor gives its held room back.
func TestInterceptorReleasesRoomOnPanic(t *testing.T) {
	sink := &memSink{}
	rec := NewRecorder(Ops{method: "USER_RETRIEVE"}, sink)
	func() {
		defer func() { _ = recover() }()
		_, _ = rec.UnaryServerInterceptor()(callCtx(), getReq{}, &grpc.UnaryServerInfo{FullMethod: method},
			func(context.Context, any) (any, error) { panic("boom") })
	}()
	if sink.held != 0 {
		t.Fatalf("%d outcome slots held after a panic", sink.held)
	}
}

func TestInterceptorSkipsUnlistedAndSilentMethods(t *testing.T) {
	sink := &memSink{}
	rec := NewRecorder(Ops{"/x/Quiet": ""}, sink)
	for _, m := range []string{"/x/Quiet", "/x/Unknown"} {
		_, _ = rec.UnaryServerInterceptor()(callCtx(), nil, &grpc.UnaryServerInfo{FullMethod: m},
			func(ctx context.Context, _ any) (any, error) {
				if TrailInTransaction(ctx, "u") != nil {
					t.Error("a silent method handed out a success event")
				}
				return nil, nil
			})
	}
	if len(sink.evs) != 0 {
		t.Fatalf("recorded %v", sink.types())
	}
}

func TestStartMetadataTakesOnlyWellFormedIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70":          true,
		"not-a-uuid":                                    false,
		"{0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70}":        false,
		"urn:uuid:0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70": false,
	} {
		got := startMetadata(getReq{id: id}).userID != ""
		if got != want {
			t.Errorf("startMetadata(%q) has userId = %v", id, got)
		}
	} // An upper-case id names the same user: its events carry it in the
	// canonical lower case.
	if got := startMetadata(getReq{id: "0190A7C2-7E3B-7C41-9F3E-2B1C4D5E6F70"}).userID; got != "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70" {
		t.Errorf("userId %q, want the lower-case id", got)
	}
}

// An event's time is now, in whole milliseconds, UTC, and exactly the
// millisecond its id carries.
func TestEventTimeIsItsIDs(t *testing.T) {
	before := time.Now().UnixMilli()
	ev := newEvent("T", "r", "c", metadata{})
	after := time.Now().UnixMilli()
	ms, ok := ids.Millis(ev.ID)
	if !ok || ev.Time.UnixMilli() != ms || ev.Time.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("event at %v with id %s: not the id's millisecond", ev.Time, ev.ID)
	}
	if ev.Time.Location() != time.UTC || ms < before || ms > after || string(ev.Metadata) != "{}" {
		t.Fatalf("event %+v, want UTC between %d and %d ms", ev, before, after)
	}
}

// slowStore blocks AppendEvents until released, counting batches.
type slowStore struct {
	mu      sync.Mutex
	batches [][]store.Event
	entered chan struct{} // when set, told of every call before it blocks
	release chan struct{}
	fail    int                // fail this many calls first (-1: every call)
	failed  chan error         // when set, told of failed calls while it has room
	written chan []store.Event // when set, told of every batch written
}

func (s *slowStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		s.fail--
		err := errors.New("database busy")
		select {
		case s.failed <- err: // nil or full: nobody is listening
		default:
		}
		return err
	}
	s.batches = append(s.batches, append([]store.Event(nil), evs...))
	if s.written != nil {
		s.written <- s.batches[len(s.batches)-1]
	}
	return nil
}

func (s *slowStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.batches {
		n += len(b)
	}
	return n
}

// ids are the ids written, in the order written.
func (s *slowStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, b := range s.batches {
		for _, ev := range b {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

func quietOptions(buffer, batch int) WriterOptions {
	return WriterOptions{Buffer: buffer, BatchSize: batch, FlushInterval: time.Hour, MaxBackoff: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// record has the writer record one call: its START, then its outcome.
func record(t *testing.T, w *Writer, id string) {
	t.Helper()
	if err := w.Start(t.Context(), store.Event{ID: id + "-start"}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	w.End(&store.Event{ID: id + "-end"})
}

func TestWriterBatchesAndFlushesOnClose(t *testing.T) {
	st := &slowStore{}
	w := NewWriter(st, quietOptions(100, 10))
	for i := range 25 {
		record(t, w, fmt.Sprint(i))
	}
	w.Close(t.Context())
	if st.total() != 50 {
		t.Fatalf("wrote %d events, want 50", st.total())
	}
	for _, b := range st.batches {
		if len(b) > 10 {
			t.Fatalf("batch of %d exceeds the batch size", len(b))
		}
	}
}

// A failing batch is retried for as long as it takes (here more often
// than the 20 attempts after which it used to be dropped), and the events
// stay in order.
func TestWriterRetriesUntilWritten(t *testing.T) {
	st := &slowStore{fail: 50}
	w := NewWriter(st, quietOptions(10, 2))
	record(t, w, "a")
	record(t, w, "b")
	w.Close(t.Context())
	if got, want := strings.Join(st.ids(), " "), "a-start a-end b-start b-end"; got != want {
		t.Fatalf("wrote %q after 50 failures, want %q", got, want)
	}
}

// A full buffer makes callers wait instead of dropping events.
func TestWriterBackpressure(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	w := NewWriter(st, quietOptions(4, 1))
	recorded := make(chan struct{})
	go func() {
		for i := range 10 {
			record(t, w, fmt.Sprint(i))
		}
		close(recorded)
	}()
	select {
	case <-recorded:
		t.Fatal("10 calls fit in a buffer of 4 events with a stalled store")
	case st.release <- struct{}{}: // the writer is stuck in its first batch
	}
	close(st.release)
	<-recorded
	w.Close(t.Context())
	if st.total() != 20 {
		t.Fatalf("wrote %d events, want all 20", st.total())
	}
}

// A call waits for room only until its deadline.
func TestWriterStartWaitsUntilTheDeadline(t *testing.T) {
	st := &slowStore{release: make(chan struct{})} // stalled, not failing
	w := NewWriter(st, quietOptions(2, 1))
	defer func() { close(st.release); w.Close(t.Context()) }()
	record(t, w, "a") // fills the buffer: START and outcome
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	err := w.Start(ctx, store.Event{ID: "b-start"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start on a full buffer: err = %v, want the deadline", err)
	}
	// Measured against the deadline itself: the ctx was made before any
	// start time the test could take.
	if early := time.Until(deadline); early > 0 {
		t.Fatalf("Start gave up %v before its deadline", early)
	}
}

// While writes fail, a call that finds the buffer full is refused at
// once, also one that was already waiting when the failure came.
func TestWriterFailsFastWhenFailingAndFull(t *testing.T) {
	st := &slowStore{release: make(chan struct{}), fail: -1, failed: make(chan error, 100)}
	w := NewWriter(st, quietOptions(2, 1))
	defer func() { w.Close(ctxTimeout(t, time.Millisecond)) }()
	record(t, w, "a") // fills the buffer
	waiting := make(chan error)
	go func() { waiting <- w.Start(t.Context(), store.Event{ID: "b-start"}) }()
	close(st.release) // the first write fails now
	<-st.failed
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrBufferFull) {
			t.Fatalf("waiting Start: err = %v, want ErrBufferFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting Start still waits after writes began to fail")
	}
	if err := w.Start(t.Context(), store.Event{ID: "c-start"}); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("Start: err = %v, want ErrBufferFull", err)
	}
}

// The outcome of a started call always has room, however full the buffer.
func TestWriterOutcomeHasRoom(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	w := NewWriter(st, quietOptions(4, 1))
	for _, id := range []string{"a", "b"} {
		if err := w.Start(t.Context(), store.Event{ID: id + "-start"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	if err := w.Start(ctx, store.Event{ID: "c-start"}); err == nil {
		t.Fatal("a third call fit in a buffer of 4 events")
	}
	w.End(&store.Event{ID: "a-end"}) // must not wait
	w.End(nil)                       // b's outcome went elsewhere
	close(st.release)
	w.Close(t.Context())
	if got, want := strings.Join(st.ids(), " "), "a-start b-start a-end"; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
}

// A START its store committed is dropped from the queue, and its room
// given back with the outcome's; one already in the batch being written is
// left alone, as are the others.
func TestWriterCommittedDropsTheQueuedStart(t *testing.T) {
	st := &slowStore{entered: make(chan struct{}, 16), release: make(chan struct{})}
	w := NewWriter(st, quietOptions(5, 1))
	start := func(id string) {
		t.Helper()
		if err := w.Start(t.Context(), store.Event{ID: id}); err != nil {
			t.Fatalf("Start %s: %v", id, err)
		}
	}
	start("a-start")
	<-st.entered // the writer holds a-start's batch
	start("b-start")
	w.Committed("a-start") // being written: stays
	w.Committed("b-start") // waiting: dropped
	// Only a-start is left of them, so two more calls fit in five
	// events; with b-start kept, the second would wait.
	for _, id := range []string{"c-start", "d-start"} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := w.Start(ctx, store.Event{ID: id})
		cancel()
		if err != nil {
			t.Fatalf("Start %s after two calls committed: %v", id, err)
		}
	}
	w.Committed("x-start") // c's START, as if written already: only the room comes back
	w.End(&store.Event{ID: "d-end"})
	close(st.release)
	w.Close(t.Context())
	if got, want := strings.Join(st.ids(), " "), "a-start c-start d-start d-end"; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
}

// With a database that stays down, Close returns at its deadline and
// reports the events it could not write in one log line.
func TestWriterCloseGivesUpAtTheDeadline(t *testing.T) {
	st := &slowStore{fail: -1}
	var logs bytes.Buffer
	opts := quietOptions(100, 10)
	opts.MaxBackoff = 10 * time.Millisecond
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	w := NewWriter(st, opts)
	for i := range 7 {
		record(t, w, fmt.Sprint(i))
	}
	start := time.Now()
	w.Close(ctxTimeout(t, 200*time.Millisecond))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with a 200ms deadline", took)
	}
	var lost []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rec["msg"].(string), "events lost") {
			lost = append(lost, rec)
		}
	}
	if len(lost) != 1 || lost[0]["count"] != float64(14) {
		t.Fatalf("loss reported as %v, want one line with count 14\n%s", lost, logs.String())
	}
	if err := w.Start(t.Context(), store.Event{ID: "late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: err = %v, want ErrClosed", err)
	}
}

func TestWriterFlushesWithinTheInterval(t *testing.T) {
	// The batch size is never reached: only the flush timer can write.
	st := &slowStore{written: make(chan []store.Event, 1)}
	opts := quietOptions(10, 100)
	opts.FlushInterval = time.Millisecond
	w := NewWriter(st, opts)
	defer w.Close(t.Context())
	if err := w.Start(t.Context(), store.Event{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case batch := <-st.written:
		if len(batch) != 1 || batch[0].ID != "a" {
			t.Fatalf("flushed %+v", batch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lone event was not written by the flush timer")
	}
	w.End(nil)
}

// A full batch is written at once, without waiting for the flush timer,
// and the writer is woken only for the first event of a batch and the one
// that fills it, not for each event.
func TestWriterWakesForTheFirstAndTheFullBatchOnly(t *testing.T) {
	st := &slowStore{written: make(chan []store.Event, 2)}
	var signals atomic.Int32
	w := newWriter(st, quietOptions(100, 4), &writerHooks{signaled: func() { signals.Add(1) }})
	defer w.Close(t.Context())
	for batch := range 2 {
		record(t, w, fmt.Sprint(batch, "a"))
		record(t, w, fmt.Sprint(batch, "b"))
		fullBatchWritten(t, st, fmt.Sprint("batch ", batch))
	}
	if got := signals.Load(); got != 4 {
		t.Errorf("the writer was signalled %d times for 8 events in two batches, want 4", got)
	}
}

// Events queued while a batch is being written make the next batch: when
// they fill it during the write, it is written right after; when they
// fill it later, when it fills.
func TestWriterWritesTheBatchesQueuedDuringAWrite(t *testing.T) {
	st := &slowStore{entered: make(chan struct{}, 3), release: make(chan struct{}), written: make(chan []store.Event, 3)}
	w := NewWriter(st, quietOptions(100, 4))
	defer w.Close(ctxTimeout(t, 5*time.Second)) // bounded: a failed test leaves a write blocked
	record(t, w, "1a")
	record(t, w, "1b")
	receive(t, st.entered, "the first batch's write")
	record(t, w, "2a") // the whole second batch, during the first's write
	record(t, w, "2b")
	st.release <- struct{}{}
	fullBatchWritten(t, st, "the first batch")
	receive(t, st.entered, "the second batch's write")
	record(t, w, "3a") // half the third, during the second's write
	st.release <- struct{}{}
	fullBatchWritten(t, st, "the second batch")
	record(t, w, "3b") // the rest, after it
	receive(t, st.entered, "the third batch's write")
	st.release <- struct{}{}
	fullBatchWritten(t, st, "the third batch")
}

// fullBatchWritten waits for st to be given a batch of 4 events.
func fullBatchWritten(t *testing.T, st *slowStore, what string) {
	t.Helper()
	if b := receive(t, st.written, what); len(b) != 4 {
		t.Fatalf("%s: a batch of %d events, want 4", what, len(b))
	}
}

// receive returns the next value from ch, failing after 5 s: the tests'
// flush interval is an hour, so nothing a test waits for here comes from
// the flush timer (a batch is written because it is full).
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	var v T
	select {
	case v = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5 s (the flush interval is an hour)", what)
	}
	return v
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Event metadata reads exactly as encoding/json wrote it from a map.
func TestMetadataJSONIsEncodingJSONs(t *testing.T) {
	for _, m := range []metadata{
		{},
		{userID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"},
		{limit: 100, hasLimit: true},
		{limit: 100, hasLimit: true, entriesCount: 0, hasEntries: true},
		{code: "NotFound", userID: "u-1"},
		{code: "Conflict", entriesCount: 7, hasEntries: true, limit: -3, hasLimit: true, userID: "x"},
		{code: `<&> "q" \ ` + "\x01\u2028\xff é", userID: "\t"},
	} {
		asMap := map[string]any{}
		if m.code != "" {
			asMap[KeyCode] = m.code
		}
		if m.hasEntries {
			asMap[KeyEntriesCount] = m.entriesCount
		}
		if m.hasLimit {
			asMap[KeyLimit] = m.limit
		}
		if m.userID != "" {
			asMap[KeyUserID] = m.userID
		}
		want, err := json.Marshal(asMap)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.appendJSON(nil); string(got) != string(want) {
			t.Errorf("%+v: %s, want %s", m, got, want)
		}
	}
}
