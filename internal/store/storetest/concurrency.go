package storetest

import (
	"sync"
	"testing"

	"github.com/usersd/usersd/internal/store"
)

// concurrencyCases are the contract of listing while others write: Seq is
// a pagination key only if a listing never passes a user that commits
// later (store.User.Seq).
var concurrencyCases = []testCase{
	{"list_under_concurrent_creates_and_deletes", testListUnderConcurrentWrites},
}

// A listing pages through the users with Limit 7 while goroutines create
// users and delete some of them, old and new. It keeps following the
// creation order (as a client tailing it would) until a page that began
// after the last write reports no more. Then no user was listed twice,
// Seq only grew, and every user still there at the end was listed: one
// that committed behind a position the listing had passed would be
// missing.
func testListUnderConcurrentWrites(t *testing.T, s store.Store, _ *Clock) {
	const (
		existing  = 40 // users before the listing
		writers   = 4
		perWriter = 30 // creates per writer; every third is deleted again
		pageSize  = 7
	)
	ctx := t.Context()
	var doomed []store.User // existing users the writers delete
	for i := range existing {
		if u := mustCreate(t, s, `{}`, nil); i%3 == 0 {
			doomed = append(doomed, u)
		}
	}

	start := make(chan struct{})
	wrote := make(chan struct{}, 1) // a write finished since the listing last looked
	done := make(chan struct{})     // every write finished
	signal := func() {
		select {
		case wrote <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range perWriter {
				u, err := s.CreateUser(ctx, store.User{ID: newID(t), Claims: `{}`}, nil)
				if err != nil {
					t.Errorf("writer %d: CreateUser: %v", w, err)
					return
				}
				signal()
				var gone []string
				if i%3 == 2 {
					gone = append(gone, u.ID)
				}
				if d := i*writers + w; d < len(doomed) {
					gone = append(gone, doomed[d].ID)
				}
				for _, id := range gone {
					if err := s.DeleteUser(ctx, id, 0, nil); err != nil {
						t.Errorf("writer %d: DeleteUser: %v", w, err)
						return
					}
					signal()
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	defer wg.Wait() // a failed test returns only once the writers have stopped using t

	close(start)
	TailListing(t, s, pageSize, wrote, done)
}

// TailListing pages through s, pageSize users a page, following the
// creation order while others write, as a client tailing it would: at the
// end of the list it waits on wrote (a write finished since it last
// looked) or done (every write finished), until a page that began after
// done reports no more. It fails t if a user is listed twice or Seq does
// not grow, and if a user stored at the end was never listed: one that
// committed behind a position the listing had passed. It returns the
// users stored at the end.
func TailListing(t *testing.T, s store.Store, pageSize int, wrote, done <-chan struct{}) []store.User {
	t.Helper()
	seen := make(map[string]bool)
	var after int64
	for {
		// Whether the writes were over is read before the page is: a page
		// that began after them sees all of them.
		var over bool
		select {
		case <-done:
			over = true
		default:
		}
		users, more := mustList(t, s, store.Page{Limit: pageSize, AfterSeq: after})
		for _, u := range users {
			if u.Seq <= after {
				t.Fatalf("Seq %d listed after Seq %d", u.Seq, after)
			}
			if seen[u.ID] {
				t.Fatalf("user %s listed twice", u.ID)
			}
			seen[u.ID] = true
			after = u.Seq
		}
		switch {
		case more:
		case over:
			stored := listAll(t, s)
			for _, u := range stored {
				if !seen[u.ID] {
					t.Errorf("user %s (Seq %d) is stored but the listing passed it (listed up to Seq %d)", u.ID, u.Seq, after)
				}
			}
			return stored
		default:
			select { // the end of the list, for now: wait for a write
			case <-wrote:
			case <-done:
			}
		}
	}
}
