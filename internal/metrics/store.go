// Package metrics holds the Prometheus instrumentation that is ours (the
// per-RPC metrics come from go-grpc-middleware's provider).
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/internal/store"
)

// InstrumentStore wraps st so every operation's latency is observed in
// usersd_store_operation_duration_seconds{operation, outcome}. Labels are
// bounded: a fixed set of operations and outcomes, never ids.
func InstrumentStore(st store.Store, reg prometheus.Registerer) store.Store {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "usersd_store_operation_duration_seconds",
		Help:    "Latency of storage operations.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. ~3s
	}, []string{"operation", "outcome"})
	reg.MustRegister(h)
	return &instrumented{next: st, hist: h}
}

type instrumented struct {
	next store.Store
	hist *prometheus.HistogramVec
}

// track starts timing op; the returned func records it with the outcome of
// the error it points at (deferred, so it sees the final error).
func (s *instrumented) track(op string) func(*error) {
	start := time.Now()
	return func(err *error) {
		s.hist.WithLabelValues(op, outcome(*err)).Observe(time.Since(start).Seconds())
	}
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrProviderLinkConflict):
		return "conflict"
	case errors.Is(err, store.ErrVersionMismatch):
		return "version_mismatch"
	case errors.Is(err, store.ErrUnavailable):
		return "unavailable"
	default:
		return "error"
	}
}

func (s *instrumented) CreateUser(ctx context.Context, u store.User, trail []store.Event) (_ store.User, err error) {
	defer s.track("create_user")(&err)
	return s.next.CreateUser(ctx, u, trail)
}

func (s *instrumented) GetUser(ctx context.Context, id string) (_ store.User, err error) {
	defer s.track("get_user")(&err)
	return s.next.GetUser(ctx, id)
}

func (s *instrumented) UpdateUser(ctx context.Context, id string, c store.UserChange, trail []store.Event) (_ store.User, err error) {
	defer s.track("update_user")(&err)
	return s.next.UpdateUser(ctx, id, c, trail)
}

func (s *instrumented) DeleteUser(ctx context.Context, id string, ifVersion int64, trail []store.Event) (err error) {
	defer s.track("delete_user")(&err)
	return s.next.DeleteUser(ctx, id, ifVersion, trail)
}

func (s *instrumented) SearchUsers(ctx context.Context, c store.Criteria, p store.Page) (_ []store.User, _ bool, err error) {
	defer s.track("search_users")(&err)
	return s.next.SearchUsers(ctx, c, p)
}

func (s *instrumented) ListUsers(ctx context.Context, p store.Page) (_ []store.User, _ bool, err error) {
	defer s.track("list_users")(&err)
	return s.next.ListUsers(ctx, p)
}

func (s *instrumented) AppendEvents(ctx context.Context, evs []store.Event) (err error) {
	defer s.track("append_events")(&err)
	return s.next.AppendEvents(ctx, evs)
}

func (s *instrumented) ListEvents(ctx context.Context, f store.EventFilter) (_ []store.Event, _ bool, err error) {
	defer s.track("list_events")(&err)
	return s.next.ListEvents(ctx, f)
}

func (s *instrumented) DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (_ int, err error) {
	defer s.track("delete_events")(&err)
	return s.next.DeleteEventsBefore(ctx, t, limit)
}

func (s *instrumented) CursorKey(ctx context.Context) ([]byte, error) { return s.next.CursorKey(ctx) }
func (s *instrumented) Ping(ctx context.Context) error                { return s.next.Ping(ctx) }
func (s *instrumented) Close(ctx context.Context) error               { return s.next.Close(ctx) }
