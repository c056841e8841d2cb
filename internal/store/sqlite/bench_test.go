package sqlite

import (
	"fmt"
	"sync/atomic"
	"testing"

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
			Claims: fmt.Appendf(nil, `{"email":"user%d@example.com","roles":["a","b"]}`, i),
		})
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
			if _, err := s.UpdateUser(b.Context(), ids[n%benchUsers], c); err != nil {
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
			u := store.User{ID: uuid.NewString(), Claims: []byte(`{"email":"new@example.com"}`)}
			if _, err := s.CreateUser(b.Context(), u); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
