package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/store"
)

// memSink collects recorded events.
type memSink struct {
	mu  sync.Mutex
	evs []store.Event
}

func (m *memSink) Record(ev store.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, ev)
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
	}{
		{"case=success recorded by the interceptor", func(ctx context.Context, _ any) (any, error) {
			Set(ctx, KeyUserID, "u")
			return "ok", nil
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_SUCCESS"}, ""},
		{"case=failure with the contract's code word", func(context.Context, any) (any, error) {
			return nil, status.Error(codes.NotFound, "User not found")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "NotFound"},
		{"case=forbidden", func(context.Context, any) (any, error) {
			return nil, status.Error(codes.PermissionDenied, "no")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "Forbidden"},
		{"case=success taken into the transaction is not recorded again", func(ctx context.Context, _ any) (any, error) {
			if ev := SuccessInTransaction(ctx, "u-1"); ev == nil || ev.Type != "USER_RETRIEVE_SUCCESS" || !strings.Contains(string(ev.Metadata), `"userId":"u-1"`) {
				t.Errorf("SuccessInTransaction = %+v", ev)
			}
			return "ok", nil
		}, []string{"USER_RETRIEVE_START"}, ""},
		{"case=failed transaction records FAIL", func(ctx context.Context, _ any) (any, error) {
			SuccessInTransaction(ctx, "u-1")
			return nil, status.Error(codes.AlreadyExists, "taken")
		}, []string{"USER_RETRIEVE_START", "USER_RETRIEVE_FAIL"}, "Conflict"},
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
		})
	}
}

func TestInterceptorSkipsUnlistedAndSilentMethods(t *testing.T) {
	sink := &memSink{}
	rec := NewRecorder(Ops{"/x/Quiet": ""}, sink)
	for _, m := range []string{"/x/Quiet", "/x/Unknown"} {
		_, _ = rec.UnaryServerInterceptor()(callCtx(), nil, &grpc.UnaryServerInfo{FullMethod: m},
			func(ctx context.Context, _ any) (any, error) {
				if SuccessInTransaction(ctx, "u") != nil {
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
		_, got := startMetadata(getReq{id: id})[KeyUserID]
		if got != want {
			t.Errorf("startMetadata(%q) has userId = %v", id, got)
		}
	}
}

func TestEventTimestampIsMillisecondUTC(t *testing.T) {
	ev := newEvent("T", "r", "c", nil, time.Date(2026, 11, 28, 13, 2, 5, 123456789, time.FixedZone("x", 3600)))
	if ev.Time.Location() != time.UTC || ev.Time.Nanosecond() != 123000000 || string(ev.Metadata) != "{}" {
		t.Fatalf("event %+v", ev)
	}
}

// slowStore blocks AppendEvents until released, counting batches.
type slowStore struct {
	mu      sync.Mutex
	batches [][]store.Event
	release chan struct{}
	fail    int                // fail this many calls first
	written chan []store.Event // when set, told of every batch written
}

func (s *slowStore) AppendEvents(_ context.Context, evs []store.Event) error {
	if s.release != nil {
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("database busy")
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

func quietOptions(buffer, batch int) WriterOptions {
	return WriterOptions{Buffer: buffer, BatchSize: batch, FlushInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestWriterBatchesAndFlushesOnClose(t *testing.T) {
	st := &slowStore{}
	w := NewWriter(st, quietOptions(100, 10))
	for i := 0; i < 25; i++ {
		w.Record(store.Event{ID: string(rune('a' + i))})
	}
	w.Close()
	if st.total() != 25 {
		t.Fatalf("wrote %d events, want 25", st.total())
	}
	for _, b := range st.batches {
		if len(b) > 10 {
			t.Fatalf("batch of %d exceeds the batch size", len(b))
		}
	}
}

func TestWriterRetriesFailedBatches(t *testing.T) {
	st := &slowStore{fail: 2}
	w := NewWriter(st, quietOptions(10, 5))
	w.Record(store.Event{ID: "a"})
	w.Close()
	if st.total() != 1 {
		t.Fatalf("wrote %d events after retries, want 1", st.total())
	}
}

// A full buffer makes callers wait instead of dropping events.
func TestWriterBackpressure(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	w := NewWriter(st, quietOptions(2, 1))
	recorded := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			w.Record(store.Event{ID: string(rune('a' + i))})
		}
		close(recorded)
	}()
	select {
	case <-recorded:
		t.Fatal("10 events fit in a buffer of 2 with a stalled store")
	case st.release <- struct{}{}: // the writer is stuck in its first batch
	}
	close(st.release)
	<-recorded
	w.Close()
	if st.total() != 10 {
		t.Fatalf("wrote %d events, want all 10", st.total())
	}
}

func TestWriterFlushesWithinTheInterval(t *testing.T) {
	// The batch size is never reached: only the flush timer can write.
	st := &slowStore{written: make(chan []store.Event, 1)}
	opts := quietOptions(10, 100)
	opts.FlushInterval = time.Millisecond
	w := NewWriter(st, opts)
	defer w.Close()
	w.Record(store.Event{ID: "a"})
	select {
	case batch := <-st.written:
		if len(batch) != 1 || batch[0].ID != "a" {
			t.Fatalf("flushed %+v", batch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lone event was not written by the flush timer")
	}
}
