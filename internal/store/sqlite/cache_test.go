package sqlite

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

func cachedUser(claims string) store.User {
	return store.User{ID: uuid.NewString(), Claims: claims, Version: 1}
}

func TestUserCacheKeepsWhatItWasGiven(t *testing.T) {
	c := newUserCache(1 << 20)
	u := cachedUser(`{"a":1}`)
	if _, ok, _ := c.get(u.ID); ok {
		t.Fatal("an empty cache had a user")
	}
	_, _, gen := c.get(u.ID)
	c.add(u, gen)
	got, ok, _ := c.get(u.ID)
	if !ok || got.ID != u.ID || got.Claims != u.Claims || got.Version != 1 {
		t.Fatalf("get after add = %+v, %v; want %+v", got, ok, u)
	}
}

// A read that began before a write was held or released may hold the row
// as it was: it must not be kept. Nor may any read of a user while a
// write of it is in flight.
func TestUserCacheKeepsNoReadThatRacedAWrite(t *testing.T) {
	c := newUserCache(1 << 20)
	u, other := cachedUser(`{}`), cachedUser(`{}`)

	_, _, before := c.get(u.ID)
	c.hold(other.ID) // a write of anyone moves the generation
	c.add(u, before)
	if _, ok, _ := c.get(u.ID); ok {
		t.Error("kept a read that began before a hold")
	}

	_, _, during := c.get(u.ID)
	c.release([]string{other.ID})
	c.add(u, during)
	if _, ok, _ := c.get(u.ID); ok {
		t.Error("kept a read that began before a release")
	}

	c.hold(u.ID)
	_, _, held := c.get(u.ID)
	c.add(u, held)
	if _, ok, _ := c.get(u.ID); ok {
		t.Error("kept a read of a user whose write is in flight")
	}
	c.hold(u.ID) // a second write of the same user in the same group
	c.release([]string{u.ID})
	_, _, stillHeld := c.get(u.ID)
	c.add(u, stillHeld)
	if _, ok, _ := c.get(u.ID); ok {
		t.Error("kept a read while one of two writes of the user is in flight")
	}
	c.release([]string{u.ID})
	_, _, after := c.get(u.ID)
	c.add(u, after)
	if _, ok, _ := c.get(u.ID); !ok {
		t.Error("did not keep a read that began after every write ended")
	}

	c.hold(u.ID)
	if _, ok, _ := c.get(u.ID); ok {
		t.Error("hold did not forget the user")
	}
	if c.bytes != 0 || len(c.held) != 1 {
		t.Errorf("after forgetting everything: %d bytes, %d held; want 0, 1", c.bytes, len(c.held))
	}
}

func TestUserCacheStaysWithinItsLimit(t *testing.T) {
	const limit = 16 << 10
	c := newUserCache(limit)
	claims := `{"note":"` + strings.Repeat("x", 500) + `"}`
	var last store.User
	for range 200 {
		last = cachedUser(claims)
		_, _, gen := c.get(last.ID)
		c.add(last, gen)
		if c.bytes > limit {
			t.Fatalf("%d bytes kept, limit %d", c.bytes, limit)
		}
	}
	if _, ok, _ := c.get(last.ID); !ok {
		t.Error("the newest user was not kept")
	}
	sum := 0
	for _, u := range c.users {
		sum += entrySize(&u)
	}
	if sum != c.bytes || len(c.users) < limit/entrySize(&last)-1 {
		t.Errorf("%d users of %d bytes counted as %d; want the count to match and the cache about full", len(c.users), sum, c.bytes)
	}

	huge := cachedUser(`{"note":"` + strings.Repeat("x", limit) + `"}`)
	_, _, gen := c.get(huge.ID)
	c.add(huge, gen)
	if _, ok, _ := c.get(huge.ID); ok {
		t.Error("kept a user larger than the whole cache")
	}
}

func TestUserCacheOff(t *testing.T) {
	s := openWith(t, t.TempDir()+"/users.db", Options{UserCacheBytes: -1})
	if s.cache != nil {
		t.Fatal("a negative UserCacheBytes left the cache on")
	}
	u := createUser(t, s)
	if got, err := s.GetUser(t.Context(), u.ID); err != nil || got.ID != u.ID {
		t.Fatalf("GetUser without a cache = %+v, %v", got, err)
	}
}

func createUser(t *testing.T, s *Store) store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{"n":0}`}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// Through the store: a read is kept, and an update, a failed conditional
// update and a delete each leave GetUser answering what is committed.
func TestGetUserCachedUntilWritten(t *testing.T) {
	s := openTemp(t)
	u := createUser(t, s)
	for range 2 {
		if got, err := s.GetUser(t.Context(), u.ID); err != nil || got.Version != 1 {
			t.Fatalf("GetUser = %+v, %v; want version 1", got, err)
		}
	}
	if _, ok, _ := s.cache.get(u.ID); !ok {
		t.Fatal("a read user was not kept")
	}

	if _, err := s.UpdateUser(t.Context(), u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"n":1}`)}, nil); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got, err := s.GetUser(t.Context(), u.ID)
	if err != nil || got.Version != 2 || got.Claims != `{"n":1}` {
		t.Fatalf("GetUser after update = %+v, %v; want version 2 with the new claims", got, err)
	}

	_, err = s.UpdateUser(t.Context(), u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"n":9}`), IfVersion: 1}, nil)
	if !errors.Is(err, store.ErrVersionMismatch) {
		t.Fatalf("stale conditional update: err = %v, want ErrVersionMismatch", err)
	}
	if got, err := s.GetUser(t.Context(), u.ID); err != nil || got.Version != 2 || got.Claims != `{"n":1}` {
		t.Fatalf("GetUser after a refused update = %+v, %v; want version 2 unchanged", got, err)
	}

	if err := s.DeleteUser(t.Context(), u.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(t.Context(), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser after delete: err = %v, want ErrNotFound", err)
	}
	if len(s.cache.held) != 0 {
		t.Errorf("holds left after the writes ended: %v", s.cache.held)
	}
}

// Readers racing writers never see a version older than one already
// acknowledged to a writer, nor versions going backwards.
func TestGetUserNeverStaleUnderConcurrentWrites(t *testing.T) {
	s := openTemp(t)
	users := []store.User{createUser(t, s), createUser(t, s)}
	const writesPerWriter = 150
	acked := make([]atomic.Int64, len(users)) // highest version acknowledged to a writer
	for i := range acked {
		acked[i].Store(1)
	}
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for w := range 4 {
		writers.Go(func() {
			for n := range writesPerWriter {
				i := (w + n) % len(users)
				got, err := s.UpdateUser(t.Context(), users[i].ID, store.UserChange{SetClaims: true, Claims: fmt.Appendf(nil, `{"n":%d}`, n)}, nil)
				if err != nil {
					errs <- fmt.Errorf("UpdateUser: %w", err)
					return
				}
				for {
					v := acked[i].Load()
					if got.Version <= v || acked[i].CompareAndSwap(v, got.Version) {
						break
					}
				}
			}
		})
	}
	for range 4 {
		readers.Go(func() {
			seen := make([]int64, len(users))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := n % len(users)
				floor := acked[i].Load()
				got, err := s.GetUser(t.Context(), users[i].ID)
				if err != nil {
					errs <- fmt.Errorf("GetUser: %w", err)
					return
				}
				if got.Version < floor || got.Version < seen[i] {
					errs <- fmt.Errorf("GetUser read version %d after version %d was acknowledged and %d read", got.Version, floor, seen[i])
					return
				}
				seen[i] = got.Version
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, u := range users {
		got, err := s.GetUser(t.Context(), u.ID)
		if err != nil || got.Version != acked[i].Load() {
			t.Errorf("user %d: GetUser = version %d, %v; want %d, the last acknowledged", i, got.Version, err, acked[i].Load())
		}
	}
}
