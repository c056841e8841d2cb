package e2e

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// TestEventsCrashDurability kills the server with SIGKILL while 8 writers
// update users and checks that a mutation and its SUCCESS event are one:
// every acknowledged update has exactly one USER_UPDATE_SUCCESS, and every
// USER_UPDATE_SUCCESS stored names an update that was applied.
func TestEventsCrashDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	token, subject := evToken(t, "crash-writer", auth.RoleIssuer)
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := usersv1.NewUserServiceClient(conn)

	ws := runCrashWorkload(t, s, c)
	byRID := map[string]crashUpdate{}
	ackedRIDs := map[string]bool{}
	lastAck := map[string]int{}
	var createRIDs []string
	for w, wr := range ws {
		if wr.err != nil {
			t.Fatalf("writer %d failed before the kill (under 8 writers every valid request is acknowledged): %v", w, wr.err)
		}
		if len(wr.users) != crashUsersEach {
			t.Fatalf("writer %d has %d users", w, len(wr.users))
		}
		createRIDs = append(createRIDs, wr.createRIDs...)
		for _, u := range wr.attempted {
			byRID[u.rid] = u
		}
		for _, u := range wr.acked {
			ackedRIDs[u.rid] = true
			lastAck[u.user] = u.n
		}
	}
	t.Logf("killed after %d acknowledged updates (%d sent)", len(ackedRIDs), len(byRID))

	s2 := start(t, dir)
	auditor, _ := evToken(t, "crash-auditor", auth.RoleAuditor)
	successes := evAll(t, s2, auditor, "types=USER_UPDATE_SUCCESS", 1000)
	perRID := map[string]int{}
	maxApplied := map[string]int{} // user → highest n with a SUCCESS event
	for _, e := range successes {
		u, ok := byRID[e.RequestID]
		if !ok {
			t.Errorf("USER_UPDATE_SUCCESS of request %q that was never sent", e.RequestID)
			continue
		}
		perRID[e.RequestID]++
		if e.Metadata["userId"] != u.user || e.ClientID != subject {
			t.Errorf("SUCCESS of %s: userId %v client %s, want %s %s", u.rid, e.Metadata["userId"], e.ClientID, u.user, subject)
		}
		maxApplied[u.user] = max(maxApplied[u.user], u.n)
	}
	for rid, n := range perRID {
		if n != 1 {
			t.Errorf("request %s has %d USER_UPDATE_SUCCESS events, want 1", rid, n)
		}
	}
	for rid := range ackedRIDs {
		if perRID[rid] == 0 {
			t.Errorf("acknowledged update %s (user %s, v=%d) has no USER_UPDATE_SUCCESS event", rid, byRID[rid].user, byRID[rid].n)
		}
	}
	unacked := 0
	for rid := range perRID {
		if !ackedRIDs[rid] {
			unacked++
		}
	}
	t.Logf("%d USER_UPDATE_SUCCESS events, %d of them for updates in flight at the kill", len(successes), unacked)

	// Every update named by a SUCCESS was applied, and the stored state is
	// the last update with a SUCCESS: no event without its change, no
	// change without its event.
	c2 := evGRPC(t, s2, token)
	for _, wr := range ws {
		for _, id := range wr.users {
			resp, err := c2.GetUser(t.Context(), &usersv1.GetUserRequest{Id: id})
			if err != nil {
				t.Errorf("user %s after the crash: %v", id, err)
				continue
			}
			fields := resp.GetUser().GetClaims().GetFields()
			v := int(fields["v"].GetNumberValue())
			switch {
			case len(fields) != 1 || fields["v"] == nil:
				t.Errorf("user %s: claims %v", id, resp.GetUser().GetClaims())
			case v != maxApplied[id]:
				t.Errorf("user %s: stored v=%d, but the last USER_UPDATE_SUCCESS is for v=%d (acknowledged up to v=%d)", id, v, maxApplied[id], lastAck[id])
			case v < lastAck[id]:
				t.Errorf("user %s: stored v=%d, acknowledged v=%d", id, v, lastAck[id])
			}
		}
	}
	// Every acknowledged create has its one SUCCESS too.
	creates := map[string]int{}
	for _, e := range evAll(t, s2, auditor, "types=USER_CREATE_SUCCESS", 1000) {
		creates[e.RequestID]++
	}
	for _, rid := range createRIDs {
		if creates[rid] != 1 {
			t.Errorf("acknowledged create %s has %d USER_CREATE_SUCCESS events, want 1", rid, creates[rid])
		}
	}
	wantStartOfEveryOutcome(t, evAll(t, s2, auditor, "categories=user", 1000))
}

// wantStartOfEveryOutcome asserts that every SUCCESS or FAIL in evs has
// the START of its operation and request: a mutation commits its START
// with its SUCCESS, and an asynchronous outcome is queued after its START.
func wantStartOfEveryOutcome(t *testing.T, evs []evEvent) {
	t.Helper()
	started := map[string]bool{} // op + " " + request id
	for _, e := range evs {
		if op, ok := strings.CutSuffix(e.Type, "_START"); ok {
			started[op+" "+e.RequestID] = true
		}
	}
	outcomes, missing := 0, 0
	for _, e := range evs {
		op, ok := strings.CutSuffix(e.Type, "_SUCCESS")
		if !ok {
			op, ok = strings.CutSuffix(e.Type, "_FAIL")
		}
		if !ok {
			continue
		}
		outcomes++
		if !started[op+" "+e.RequestID] {
			missing++
			if missing <= 10 {
				t.Errorf("%s of request %s has no %s_START", e.Type, e.RequestID, op)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d SUCCESS/FAIL events have no START", missing, outcomes)
	}
	t.Logf("%d events, %d outcomes checked for their START", len(evs), outcomes)
}
