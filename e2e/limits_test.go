package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// wantRetryAfter asserts a whole number of seconds, at least one.
func wantRetryAfter(t *testing.T, r response) {
	t.Helper()
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After %q on %d %s", r.Header.Get("Retry-After"), r.Status, r.Body)
	}
}

// Per-caller rate limits: a caller past its burst gets 429 with
// Retry-After (RESOURCE_EXHAUSTED with RetryInfo over gRPC); other callers
// are not affected; refused calls record no analytic events and are
// counted in metrics.
func TestRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	// A burst of 20 and practically no refill during the test.
	s := start(t, "", "--rate-limit", "0.001", "--rate-limit-burst", "20")
	limited, limitedSubject := evToken(t, "limited", auth.RoleIssuer)

	var lastAdmitted string
	for i := range 20 {
		lastAdmitted = evRID(fmt.Sprintf("admitted-%d", i))
		if r := evDo(t, s, limited, lastAdmitted, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
			t.Fatalf("call %d within the burst: %d %s", i+1, r.Status, r.Body)
		}
	}
	refusedRID := evRID("refused")
	r := evDo(t, s, limited, refusedRID, "GET", "/v1/users/"+missingID, "")
	wantError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	wantRetryAfter(t, r)
	evWantEcho(t, r, refusedRID)
	// Writes are refused as well, before any validation or store work.
	wantError(t, evDo(t, s, limited, evRID("refused-post"), "POST", "/v1/users", `{}`), http.StatusTooManyRequests, "TooManyRequests")

	_, err := evGRPC(t, s, limited).GetUser(t.Context(), &usersv1.GetUserRequest{Id: missingID})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("gRPC past the burst: %v", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry.GetRetryDelay().AsDuration().Seconds() < 1 {
		t.Fatalf("RetryInfo %v", retry)
	}

	// Another caller has its own budget.
	other, _ := evToken(t, "other", auth.RoleIssuer)
	if r := evDo(t, s, other, evRID("other"), "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
		t.Fatalf("another caller: %d %s", r.Status, r.Body)
	}

	// Admitted calls left their events; the refused one none at all.
	evFence(t, s, adminToken)
	if evs := evByRequest(t, s, adminToken, lastAdmitted); len(evs) != 2 || evs[0].ClientID != limitedSubject {
		t.Fatalf("events of an admitted call: %+v", evs)
	}
	if evs := evByRequest(t, s, adminToken, refusedRID); len(evs) != 0 {
		t.Fatalf("a rate-limited call recorded events: %+v", evs)
	}
	text := string(s.do(t, "GET", "/metrics", "").Body)
	if n := metricSum(t, text, "grpc_server_handled_total", `grpc_code="ResourceExhausted"`, `transport="rest"`); n < 2 {
		t.Fatalf("rate-limited REST calls counted %v times in grpc_server_handled_total, want 2", n)
	}
	if n := metricSum(t, text, "grpc_server_handled_total", `grpc_code="ResourceExhausted"`, `transport="grpc"`); n < 1 {
		t.Fatalf("rate-limited gRPC calls counted %v times in grpc_server_handled_total, want 1", n)
	}
	if n := metricSum(t, text, "usersd_http_requests_total", `code="429"`); n < 2 {
		t.Fatalf("429s counted %v times in usersd_http_requests_total, want 2", n)
	}
}

// The in-flight bound on writes: 8 concurrent writers are never shed (the
// contract), more may be, but only with 503 + Retry-After and the JSON
// error body, and every acknowledged create is stored.
func TestInFlightWritesBound(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--max-in-flight-writes", "8")

	var (
		mu       sync.Mutex
		created  []string
		shed     int
		failures []string
	)
	run := func(writers, each int) {
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for range each {
					r := s.do(t, "POST", "/v1/users", `{"claims":{"k":"v"}}`)
					mu.Lock()
					switch r.Status {
					case http.StatusCreated:
						var u struct{ ID string }
						if err := json.Unmarshal(r.Body, &u); err != nil || u.ID == "" {
							failures = append(failures, "201 without an id: "+string(r.Body))
						}
						created = append(created, u.ID)
					case http.StatusServiceUnavailable:
						shed++
						var e errorBody
						if json.Unmarshal(r.Body, &e) != nil || e.Code != "ServiceUnavailable" || r.Header.Get("Retry-After") == "" {
							failures = append(failures, fmt.Sprintf("bad 503: %v %s", r.Header, r.Body))
						}
					default:
						failures = append(failures, fmt.Sprintf("%d %s", r.Status, r.Body))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}

	run(8, 15)
	if shed != 0 || len(failures) != 0 {
		t.Fatalf("8 concurrent writers: %d shed, failures %q", shed, failures)
	}
	run(64, 5)
	if len(failures) != 0 {
		t.Fatalf("64 concurrent writers: %q", failures)
	}
	t.Logf("64 concurrent writers against a bound of 8: %d shed with 503", shed)

	// Every acknowledged create is there.
	stored := map[string]bool{}
	for cursor := ""; ; {
		path := "/v1/users?limit=1000"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := s.do(t, "GET", path, "")
		var page struct {
			Data       []struct{ ID string }
			NextCursor string
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &page) != nil {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		for _, u := range page.Data {
			stored[u.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	for _, id := range created {
		if !stored[id] {
			t.Fatalf("acknowledged user %s is not stored", id)
		}
	}
	if len(stored) != len(created) {
		t.Fatalf("%d users stored, %d acknowledged", len(stored), len(created))
	}
}
