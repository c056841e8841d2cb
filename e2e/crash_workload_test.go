package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// Sizes of the crash workload.
const (
	crashWriters       = 8
	crashUsersEach     = 4
	crashMaxUpdates    = 2000 // per writer: the bound if the kill never came
	crashKillAfterAcks = 400  // acknowledged updates, all writers together
)

// crashUpdate is one attempted update: claims {"v": n} on user, sent with
// request id rid.
type crashUpdate struct {
	user string
	n    int
	rid  string
}

// crashWriter is what one writer of the crash workload did.
type crashWriter struct {
	users       []string // created, acknowledged
	createRIDs  []string
	lostCreates int           // creates that failed after the kill: may or may not exist
	attempted   []crashUpdate // every update sent, acknowledged or not
	acked       []crashUpdate
	err         error // a failure before the kill
}

// runCrashWorkload has 8 writers each create 4 users ({"v": 0}) and then
// update them in turn with {"v": n} over c, each call with its own request
// id; once 400 updates are acknowledged it kills the server with SIGKILL,
// and returns when every writer has stopped. Writers stop at their first
// error, so at most their last attempted update is unacknowledged. The
// test fails if a writer stopped before the kill.
func runCrashWorkload(t *testing.T, s *server, c usersv1.UserServiceClient) []crashWriter {
	t.Helper()
	var (
		acked   atomic.Int64
		killing atomic.Bool
		trigger = make(chan struct{})
		allDone = make(chan struct{})
		ws      = make([]crashWriter, crashWriters)
		wg      sync.WaitGroup
	)
	call := func(rid string) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		return metadata.AppendToOutgoingContext(ctx, "x-request-id", rid), cancel
	}
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := &ws[w]
			fail := func(err error) {
				if !killing.Load() {
					me.err = err
				}
			}
			for i := range crashUsersEach {
				rid := fmt.Sprintf("crash-create-w%d-%d-%s", w, i, randomHex(4))
				ctx, cancel := call(rid)
				resp, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claimsV(0)}})
				cancel()
				if err != nil {
					if killing.Load() {
						me.lostCreates++
					}
					fail(err)
					return
				}
				me.users = append(me.users, resp.GetUser().GetId())
				me.createRIDs = append(me.createRIDs, rid)
			}
			for n := 1; n <= crashMaxUpdates; n++ {
				u := crashUpdate{user: me.users[n%crashUsersEach], n: n, rid: fmt.Sprintf("crash-update-w%d-%d-%s", w, n, randomHex(4))}
				me.attempted = append(me.attempted, u)
				ctx, cancel := call(u.rid)
				resp, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: u.user, User: &usersv1.User{Claims: claimsV(n)}, UpdateMask: mask("claims")})
				cancel()
				if err != nil {
					fail(err)
					return
				}
				if got := resp.GetUser().GetClaims().GetFields()["v"].GetNumberValue(); got != float64(n) {
					me.err = errors.New("update response does not echo the new claims")
					return
				}
				me.acked = append(me.acked, u)
				if acked.Add(1) == crashKillAfterAcks {
					close(trigger)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(allDone) }()

	select {
	case <-trigger:
	case <-allDone:
		var errs []error
		for _, w := range ws {
			errs = append(errs, w.err)
		}
		t.Fatalf("writers stopped after %d acknowledged updates, before the kill: %v", acked.Load(), errors.Join(errs...))
	case <-time.After(wait(2 * time.Minute)):
		t.Fatalf("only %d acknowledged updates after %v", acked.Load(), wait(2*time.Minute))
	}
	killing.Store(true)
	s.kill()
	select {
	case <-allDone:
	case <-time.After(2 * callTimeout):
		t.Fatal("writers did not stop after the kill")
	}
	return ws
}
