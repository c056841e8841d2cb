package sqlite

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

const benchUsers = 1000

// seedUsers creates n users with small claims and returns their ids.
func seedUsers(b *testing.B, s *Store, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		u, err := s.CreateUser(b.Context(), store.User{
			ID:     uuid.NewString(),
			Claims: fmt.Sprintf(`{"email":"user%d@example.com","roles":["a","b"]}`, i),
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	return ids
}

func BenchmarkGetUser(b *testing.B) {
	s := openTemp(b)
	ids := seedUsers(b, s, benchUsers)
	var next atomic.Uint64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%benchUsers]
			if _, err := s.GetUser(b.Context(), id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUpdateUser(b *testing.B) {
	s := openTemp(b)
	ids := seedUsers(b, s, benchUsers)
	var next atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			c := store.UserChange{SetClaims: true, Claims: fmt.Appendf(nil, `{"n":%d}`, n)}
			if _, err := s.UpdateUser(b.Context(), ids[n%benchUsers], c, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCreateUser(b *testing.B) {
	s := openTemp(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := store.User{ID: uuid.NewString(), Claims: `{"email":"new@example.com"}`}
			if _, err := s.CreateUser(b.Context(), u, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGroupCommit measures updates with their trail (START and
// SUCCESS, as the service writes them) from 1, 8 and 32 concurrent
// writers, one transaction per write ("single", as before group commit)
// and grouped: mutations/s, and commits/mutation, which with
// synchronous=FULL in WAL mode is fsyncs per mutation (one per commit).
// Compare the two modes within one run; absolute rates follow the disk.
//
//	go test -run '^$' -bench GroupCommit ./internal/store/sqlite/
func BenchmarkGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 8, 32} {
		for _, mode := range []struct {
			name  string
			limit int
		}{{"single", 1}, {"grouped", 0}} {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, mode.name), func(b *testing.B) {
				var commits atomic.Int64
				s := openWith(b, filepath.Join(b.TempDir(), "users.db"), Options{
					groupLimit: mode.limit,
					hooks:      &hooks{committed: func(int) { commits.Add(1) }},
				})
				ids := seedUsers(b, s, benchUsers)
				commits.Store(0)
				var next atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							c := store.UserChange{SetClaims: true, Claims: fmt.Appendf(nil, `{"n":%d}`, n)}
							trail := []store.Event{testEvent("USER_UPDATE_START"), testEvent("USER_UPDATE_SUCCESS")}
							if _, err := s.UpdateUser(b.Context(), ids[n%benchUsers], c, trail); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mutations/s")
				b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/mutation")
			})
		}
	}
}

// BenchmarkAppendEvents measures the asynchronous writer's transactions:
// batches of 512 events like a busy server's (ns/event includes the
// commit's fsync). Request ids come in two shapes: generated ones, which
// are UUIDv7 and so append to the request-id index, and ones callers send
// in X-Request-Id, modelled as random UUIDs, which land all over it: about
// three times the cost per event on a table of 50,000, more as it grows.
func BenchmarkAppendEvents(b *testing.B) {
	for _, shape := range []struct {
		name      string
		requestID func() string
	}{
		{"requestIds=generated", func() string { return uuid.Must(uuid.NewV7()).String() }},
		{"requestIds=random", uuid.NewString},
	} {
		b.Run(shape.name, func(b *testing.B) {
			s := openTemp(b)
			batch := make([]store.Event, 512)
			for b.Loop() {
				b.StopTimer()
				for j := range batch {
					batch[j] = store.Event{
						ID: uuid.Must(uuid.NewV7()).String(), Time: time.Now(), Type: fmt.Sprintf("USER_RETRIEVE_%d", j%3),
						Category: "user", RequestID: shape.requestID(), ClientID: "client",
						Metadata: []byte(`{"userId":"0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"}`),
					}
				}
				b.StartTimer()
				if err := s.AppendEvents(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
		})
	}
}

// BenchmarkListEventsMillion measures listings over a million events, the
// size the event indexes are for. Seeding takes a while, so it runs once
// for all the sub-benchmarks:
//
//	go test -run '^$' -bench ListEventsMillion -v ./internal/store/sqlite
func BenchmarkListEventsMillion(b *testing.B) {
	s := openTemp(b)
	start := time.Now()
	requestIDs := seedEvents(b, s, 1_000_000)
	b.Logf("seeded 1,000,000 events in %v (batches of %d)", time.Since(start).Round(time.Millisecond), eventBatch)
	mid := requestIDs[len(requestIDs)/2]
	windowEnd := eventsStart.Add(8 * time.Minute)
	windowStart := windowEnd.Add(-time.Minute)

	for _, bc := range []struct {
		name  string
		f     store.EventFilter
		depth int // pages to skip first, following Before
	}{
		{name: "newest_page"},
		{name: "type", f: store.EventFilter{Types: []string{"USER_CREATE_SUCCESS"}}},
		{name: "rare_type", f: store.EventFilter{Types: []string{"USER_DELETE_FAIL"}}},
		{name: "two_types", f: store.EventFilter{Types: []string{"USER_CREATE_SUCCESS", "USER_DELETE_FAIL"}}},
		{name: "request_id", f: store.EventFilter{RequestIDs: []string{mid}}},
		{name: "request_ids_and_type", f: store.EventFilter{RequestIDs: []string{mid, requestIDs[1]}, Types: []string{"USER_CREATE_SUCCESS"}}},
		{name: "one_minute", f: store.EventFilter{From: &windowStart, To: &windowEnd}},
		{name: "page_50", depth: 49},
		{name: "type_page_50", f: store.EventFilter{Types: []string{"USER_CREATE_SUCCESS"}}, depth: 49},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := bc.f
			f.Limit = 100
			f.Before = skipPages(b, s, f, bc.depth)
			for b.Loop() {
				events, _, err := s.ListEvents(b.Context(), f)
				if err != nil || len(events) == 0 {
					b.Fatalf("ListEvents: %d events, %v", len(events), err)
				}
			}
		})
	}
	// Last, as it changes the data: one retention batch.
	b.Run("delete_oldest_1000", func(b *testing.B) {
		for b.Loop() {
			if n, err := s.DeleteEventsBefore(b.Context(), time.Now(), 1000); err != nil || n != 1000 {
				b.Fatalf("DeleteEventsBefore: %d, %v", n, err)
			}
		}
	})
}

const eventBatch = 10_000

// eventsStart is when the seeded events begin.
var eventsStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// seedEvents writes about n events the way the service produces them:
// per request a START, then a SUCCESS (19 times in 20) or a FAIL in the
// same or the next millisecond, requests 0 to 3 ms apart, so many events
// share a millisecond. It returns the request ids.
func seedEvents(b *testing.B, s *Store, n int) []string {
	b.Helper()
	ops := []string{"USER_CREATE", "USER_RETRIEVE", "USER_UPDATE", "USER_DELETE", "USER_RETRIEVE_LIST", "USER_SEARCH"}
	rng := rand.New(rand.NewPCG(1, 2))
	at := eventsStart
	var (
		requestIDs []string
		batch      []store.Event
	)
	for len(requestIDs)*2 < n {
		op := ops[rng.IntN(len(ops))]
		rid := uuid.NewString()
		requestIDs = append(requestIDs, rid)
		result := "_SUCCESS"
		if rng.IntN(20) == 0 {
			result = "_FAIL"
		}
		batch = append(batch,
			benchEvent(at, op+"_START", rid),
			benchEvent(at.Add(time.Duration(rng.IntN(2))*time.Millisecond), op+result, rid))
		at = at.Add(time.Duration(rng.IntN(4)) * time.Millisecond)
		if len(batch) >= eventBatch {
			if err := s.AppendEvents(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.AppendEvents(b.Context(), batch); err != nil {
		b.Fatal(err)
	}
	return requestIDs
}

func benchEvent(at time.Time, typ, requestID string) store.Event {
	return store.Event{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Time:      at,
		Type:      typ,
		Category:  "user",
		RequestID: requestID,
		ClientID:  "client-1",
		Metadata:  fmt.Appendf(nil, `{"userId":%q}`, uuid.NewString()),
	}
}

// skipPages lists depth pages of f and returns the position after them.
func skipPages(b *testing.B, s *Store, f store.EventFilter, depth int) *store.EventPosition {
	b.Helper()
	for range depth {
		events, more, err := s.ListEvents(b.Context(), f)
		if err != nil || !more {
			b.Fatalf("ListEvents: more %v, %v", more, err)
		}
		last := events[len(events)-1]
		f.Before = &store.EventPosition{Time: last.Time, ID: last.ID}
	}
	return f.Before
}
