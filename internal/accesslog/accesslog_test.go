package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/requestid"
)

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log lines, decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// newTestRecorder returns a Recorder logging JSON at debug level into the
// returned buffer, with its metrics in the returned registry.
func newTestRecorder(t *testing.T, proxies string) (*Recorder, *logBuffer, *prometheus.Registry) {
	t.Helper()
	var tp TrustedProxies
	if err := tp.Set(proxies); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	rc := New(Options{
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     reg,
		TrustedProxies: tp,
	})
	return rc, logs, reg
}

// wantFields checks the line has exactly these fields besides time,
// level, msg and duration_ms (which must be there).
func wantFields(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	if line["msg"] != "request" {
		t.Fatalf("msg %v", line["msg"])
	}
	if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
		t.Fatalf("duration_ms %v", line["duration_ms"])
	}
	got := map[string]any{}
	for k, v := range line {
		switch k {
		case "time", "level", "msg", "duration_ms":
		default:
			got[k] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fields\n %v\nwant\n %v", got, want)
	}
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMiddlewareLogsOneLineWithTheCall(t *testing.T) {
	rc, logs, _ := newTestRecorder(t, "")
	h := requestid.Middleware(rc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NoteRoute(r.Context(), "/v1/users/{id}")
		SetSubject(r.Context(), "alice") // as authentication does, in the gateway's call
		NoteCall(r.Context(), "/users.v1.UserService/GetUser", status.Error(codes.NotFound, "User not found"))
		w.WriteHeader(http.StatusNotFound)
	})))
	r := httptest.NewRequest("GET", "/v1/users/0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Request-Id", "rid-1")
	r.Header.Set("X-Forwarded-For", "198.51.100.7") // not from a trusted proxy
	serve(h, r)

	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines: %v", len(lines), lines)
	}
	wantFields(t, lines[0], map[string]any{
		"transport": "rest", "method": "GET", "route": "/v1/users/{id}", "status": 404.0,
		"rpc": "users.v1.UserService/GetUser", "code": "NotFound", "error": "User not found",
		"request_id": "rid-1", "subject": "alice", "client": "192.0.2.1", "peer": "192.0.2.1:1234",
	})
	if lines[0]["level"] != "INFO" {
		t.Fatalf("level %v", lines[0]["level"])
	}
	if n := testutil.ToFloat64(rc.httpRequests.WithLabelValues("GET", "/v1/users/{id}", "404")); n != 1 {
		t.Fatalf("usersd_http_requests_total %v, want 1", n)
	}
	if n := testutil.CollectAndCount(rc.httpDuration); n != 1 {
		t.Fatalf("%d duration series, want 1", n)
	}
}

// Behind a trusted proxy the client is the address it forwards.
func TestMiddlewareTrustedProxy(t *testing.T) {
	rc, logs, _ := newTestRecorder(t, "192.0.2.0/24")
	r := httptest.NewRequest("GET", "/healthz", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	serve(rc.Middleware(http.NotFoundHandler()), r)
	if l := logs.lines(t)[0]; l["client"] != "203.0.113.9" || l["peer"] != "192.0.2.1:1234" {
		t.Fatalf("client %v, peer %v", l["client"], l["peer"])
	}
}

// Requests answered before any route or call: the line has no rpc or code,
// the route is "unmatched", and the method label stays bounded.
func TestMiddlewareRefusalBeforeRouting(t *testing.T) {
	rc, logs, _ := newTestRecorder(t, "")
	h := rc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "too large", http.StatusRequestHeaderFieldsTooLarge)
	}))
	r := httptest.NewRequest("BREW", "/coffee/42", nil)
	r.RemoteAddr = "[2001:db8::1]:443"
	serve(h, r)
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	wantFields(t, lines[0], map[string]any{
		"transport": "rest", "method": "BREW", "route": Unmatched, "status": 431.0,
		"client": "2001:db8::1", "peer": "[2001:db8::1]:443",
	})
	if n := testutil.ToFloat64(rc.httpRequests.WithLabelValues("other", Unmatched, "431")); n != 1 {
		t.Fatalf("usersd_http_requests_total %v, want 1", n)
	}
}

func TestMiddlewareStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(http.ResponseWriter)
		want  int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 200},
		{"body without a header", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, 200},
		{"interim response first", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(204) }, 204},
		{"status then body", func(w http.ResponseWriter) { w.WriteHeader(201); _, _ = w.Write([]byte("x")) }, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, logs, _ := newTestRecorder(t, "")
			serve(rc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tc.write(w) })),
				httptest.NewRequest("GET", "/", nil))
			if got := logs.lines(t)[0]["status"]; got != float64(tc.want) {
				t.Fatalf("status %v, want %d", got, tc.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    entry
		want slog.Level
	}{
		{"probe ok", entry{transport: REST, status: 200, probe: true}, slog.LevelDebug},
		{"probe failing", entry{transport: REST, status: 503, probe: true}, slog.LevelError},
		{"health check", entry{transport: GRPC, called: true, probe: true}, slog.LevelDebug},
		{"client error", entry{transport: REST, status: 404}, slog.LevelInfo},
		{"server error", entry{transport: REST, status: 500}, slog.LevelError},
		{"REST call unavailable", entry{transport: REST, status: 503, called: true, code: codes.Unavailable}, slog.LevelWarn},
		{"gRPC internal", entry{transport: GRPC, called: true, code: codes.Internal}, slog.LevelError},
		{"gRPC denied", entry{transport: GRPC, called: true, code: codes.PermissionDenied}, slog.LevelInfo},
	} {
		if got := tc.e.level(); got != tc.want {
			t.Errorf("%s: level %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A Recorder whose quota runs on a fake clock, its reports when the test
// says so.
type quotaUnderTest struct {
	rc        *Recorder
	logs      *logBuffer
	clock     time.Time
	scheduled []func()
}

func newQuotaUnderTest(t *testing.T) *quotaUnderTest {
	rc, logs, _ := newTestRecorder(t, "")
	q := &quotaUnderTest{rc: rc, logs: logs, clock: time.Unix(1_700_000_000, 0)}
	rc.quota.now = func() time.Time { return q.clock }
	rc.quota.after = func(d time.Duration, f func()) {
		if d != refusedReport {
			t.Fatalf("report scheduled after %v", d)
		}
		q.scheduled = append(q.scheduled, f)
	}
	return q
}

func (q *quotaUnderTest) finish(e entry, n int) {
	for range n {
		q.rc.write(context.Background(), &e, time.Millisecond)
	}
}

// requests counts the request lines logged; reports returns the counts of
// the reports logged.
func (q *quotaUnderTest) count(t *testing.T) (requests int, reports []int) {
	t.Helper()
	for _, l := range q.logs.lines(t) {
		switch {
		case l["msg"] == "request":
			requests++
		case strings.HasPrefix(l["msg"].(string), "unauthenticated or rate-limited calls not logged"):
			reports = append(reports, int(l["suppressed"].(float64)))
		default:
			t.Fatalf("unexpected line %v", l)
		}
	}
	return requests, reports
}

func (q *quotaUnderTest) runReports() {
	due := q.scheduled
	q.scheduled = nil
	for _, f := range due {
		f()
	}
}

func grpcCall(code codes.Code) entry { return entry{transport: GRPC, called: true, code: code} }
func restCall(status int, code codes.Code) entry {
	return entry{transport: REST, status: status, called: true, code: code}
}

// Refused requests on either transport share one bucket: a burst of 10,
// then 5 a second, the rest counted in one report per second.
func TestQuotaBoundsRefusedRequests(t *testing.T) {
	q := newQuotaUnderTest(t)
	q.finish(grpcCall(codes.Unauthenticated), 300)
	q.finish(restCall(401, codes.Unauthenticated), 300)
	q.finish(grpcCall(codes.ResourceExhausted), 200)
	q.finish(restCall(429, codes.ResourceExhausted), 200)
	q.finish(grpcCall(codes.OK), 25)
	q.finish(restCall(200, codes.OK), 25)
	q.finish(grpcCall(codes.PermissionDenied), 25)
	q.finish(entry{transport: REST, status: 404}, 25)
	if n, _ := q.count(t); n != refusedBurst+100 {
		t.Fatalf("%d lines logged, want the burst of %d refused and every other one", n, refusedBurst)
	}
	if len(q.scheduled) != 1 {
		t.Fatalf("%d reports scheduled, want one for the whole run of dropped lines", len(q.scheduled))
	}
	q.runReports()
	if _, reports := q.count(t); len(reports) != 1 || reports[0] != 1000-refusedBurst {
		t.Fatalf("reported %v suppressed, want [%d]", reports, 1000-refusedBurst)
	}

	// One second later the bucket has refilled by the steady rate.
	q.clock = q.clock.Add(time.Second)
	before, _ := q.count(t)
	q.finish(restCall(401, codes.Unauthenticated), 100)
	if n, _ := q.count(t); n-before != refusedPerSecond {
		t.Fatalf("%d lines logged a second later, want %d", n-before, refusedPerSecond)
	}
	q.runReports()
	if _, reports := q.count(t); len(reports) != 2 || reports[1] != 100-refusedPerSecond {
		t.Fatalf("reports %v, want a second one of %d", reports, 100-refusedPerSecond)
	}
	q.runReports()
	if _, reports := q.count(t); len(reports) != 2 {
		t.Fatalf("reports %v with nothing dropped since the last", reports)
	}
}
