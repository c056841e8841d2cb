package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// logLines decodes the server's log lines.
func logLines(t *testing.T, s *server) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// requestLines returns the access log lines of a request id.
func requestLines(t *testing.T, s *server, rid string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logLines(t, s) {
		if l["msg"] == "request" && l["request_id"] == rid {
			out = append(out, l)
		}
	}
	return out
}

// logFence returns once every line of the requests answered so far is in
// s.logs: a request's line is logged before its response is complete
// (and a gRPC call's before its status is sent), and lines are written
// and read in order (in batches, at most 100 ms late), so the line of one
// more request comes after all of them.
func logFence(t *testing.T, s *server) {
	t.Helper()
	rid := evRID("fence")
	if r := s.do(t, "GET", "/openapi.json", "", "X-Request-Id", rid); r.Status != http.StatusOK {
		t.Fatalf("fence: %d", r.Status)
	}
	limit := wait(10 * time.Second)
	for deadline := time.Now().Add(limit); len(requestLines(t, s, rid)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the fence request was not logged within %v:\n%s", limit, s.logs)
		}
		time.Sleep(5 * time.Millisecond) // polling the pipe reader, not waiting out a race
	}
}

// wantOneLine asserts exactly one access log line for rid, with these
// fields (and a duration), and returns it.
func wantOneLine(t *testing.T, s *server, rid string, want map[string]any) map[string]any {
	t.Helper()
	lines := requestLines(t, s, rid)
	if len(lines) != 1 {
		t.Fatalf("%d lines for request %s, want 1: %v", len(lines), rid, lines)
	}
	l := lines[0]
	if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms %v", l["duration_ms"])
	}
	for k, v := range want {
		if fmt.Sprint(l[k]) != fmt.Sprint(v) {
			t.Errorf("request %s: %s = %v, want %v\n%v", rid, k, l[k], v, l)
		}
	}
	return l
}

// peerClient is an HTTP client whose requests come from a known local
// address (one connection, kept).
type peerClient struct {
	*http.Client
	mu    sync.Mutex
	local string
}

func newPeerClient(t *testing.T) *peerClient {
	c := &peerClient{}
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.mu.Lock()
			c.local = conn.LocalAddr().String()
			c.mu.Unlock()
		}
		return conn, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c.Client = &http.Client{Transport: tr}
	return c
}

func (c *peerClient) do(t *testing.T, s *server, method, path string, h http.Header) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+s.HTTPAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (c *peerClient) addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// peerGRPC is a gRPC client with adminToken whose calls come from a known
// local address.
func peerGRPC(t *testing.T, s *server) (usersv1.UserServiceClient, func() string) {
	t.Helper()
	var mu sync.Mutex
	var local string
	var d net.Dialer
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(adminToken)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				mu.Lock()
				local = c.LocalAddr().String()
				mu.Unlock()
			}
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return usersv1.NewUserServiceClient(conn), func() string { mu.Lock(); defer mu.Unlock(); return local }
}

// One line per request on each transport: REST with the method, the route
// template (never the id), the HTTP status, the gRPC call and its code,
// the caller and the real client address; gRPC with its RPC and code.
// The gateway's in-process call adds no line of its own.
func TestAccessLogOneLinePerRequest(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{}`)["id"].(string)

	c := newPeerClient(t)
	restRID := evRID("rest")
	status := c.do(t, s, "GET", "/v1/users/"+id, http.Header{
		"Authorization": {"Bearer " + adminToken}, "X-Request-Id": {restRID},
		"X-Forwarded-For": {"203.0.113.9"}, // no trusted proxies: ignored
	})
	if status != http.StatusOK {
		t.Fatalf("GET: %d", status)
	}
	g, grpcLocal := peerGRPC(t, s)
	grpcRID := evRID("grpc")
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-request-id", grpcRID, "x-forwarded-for", "203.0.113.9")
	if _, err := g.GetUser(ctx, &usersv1.GetUserRequest{Id: missingID}); err == nil {
		t.Fatal("GetUser of a missing user succeeded")
	}
	logFence(t, s)

	rest := wantOneLine(t, s, restRID, map[string]any{
		"level": "INFO", "transport": "rest", "method": "GET", "route": "/v1/users/{id}", "status": 200,
		"rpc": "users.v1.UserService/GetUser", "code": "OK", "subject": "e2e-admin",
		"client": "127.0.0.1", "peer": c.addr(),
	})
	if strings.Contains(fmt.Sprint(rest), id) {
		t.Errorf("the user id appears in the REST line: %v", rest)
	}
	grpcLine := wantOneLine(t, s, grpcRID, map[string]any{
		"level": "INFO", "transport": "grpc", "rpc": "users.v1.UserService/GetUser", "code": "NotFound",
		"error": "User not found", "subject": "e2e-admin", "client": "127.0.0.1", "peer": grpcLocal(),
	})
	for _, k := range []string{"method", "route", "status"} {
		if _, ok := grpcLine[k]; ok {
			t.Errorf("the gRPC line has %s: %v", k, grpcLine)
		}
	}
	// Info level: no debug lines, and no line speaks of the in-process call.
	for _, l := range logLines(t, s) {
		if l["level"] == "DEBUG" || l["peer"] == "gateway" || l["peer"] == "bufconn" {
			t.Errorf("unexpected line %v", l)
		}
	}

	// Metrics tell the transports apart.
	text := string(s.do(t, "GET", "/metrics", "").Body)
	for _, labels := range [][]string{
		{`grpc_code="OK"`, `grpc_method="GetUser"`, `transport="rest"`},
		{`grpc_code="NotFound"`, `grpc_method="GetUser"`, `transport="grpc"`},
	} {
		if n := metricSum(t, text, "grpc_server_handled_total", labels...); n != 1 {
			t.Errorf("grpc_server_handled_total %v = %v, want 1", labels, n)
		}
	}
	if n := metricSum(t, text, "usersd_http_requests_total", `code="200",method="GET",route="/v1/users/{id}",transport="rest"`); n != 1 {
		t.Errorf("usersd_http_requests_total of the GET = %v, want 1", n)
	}
	if n := metricSum(t, text, "usersd_http_request_duration_seconds_count", `method="GET",route="/v1/users/{id}",transport="rest"`); n != 1 {
		t.Errorf("usersd_http_request_duration_seconds_count of the GET = %v, want 1", n)
	}
	if strings.Contains(text, id) {
		t.Error("a user id appears in a metric label")
	}
}

// REST refusals that never reach the gRPC chain (or reach it only to be
// refused there) are logged and counted like any request.
func TestAccessLogRESTRefusals(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--grpc-max-header-bytes", "8192")
	before := string(s.do(t, "GET", "/metrics", "").Body)
	for _, tc := range []struct {
		method, path, body string
		headers            []string
		status             int
		route, code        string // code "": no gRPC call
	}{
		{"GET", "/v1/nope", "", nil, http.StatusNotFound, "unmatched", ""},
		{"PATCH", "/v1/users/" + missingID, "", nil, http.StatusMethodNotAllowed, "/v1/users/{id}", ""},
		{"POST", "/healthz", "", nil, http.StatusMethodNotAllowed, "/healthz", ""},
		{"POST", "/v1/users", "x", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "/v1/users", "InvalidArgument"},
		{"POST", "/v1/users", `{"claims":{"a":"` + strings.Repeat("a", 70<<10) + `"}}`, nil, http.StatusRequestEntityTooLarge, "/v1/users", "InvalidArgument"},
		{"GET", "/v1/users", "", []string{"X-Big", strings.Repeat("b", 10<<10)}, http.StatusRequestHeaderFieldsTooLarge, "unmatched", ""},
	} {
		rid := evRID("refused")
		r := s.do(t, tc.method, tc.path, tc.body, append([]string{"X-Request-Id", rid}, tc.headers...)...)
		if r.Status != tc.status {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, r.Status, tc.status)
		}
		if got := r.Header.Get("X-Request-Id"); got != rid {
			t.Errorf("%s %s: X-Request-Id %q, want %q", tc.method, tc.path, got, rid)
		}
		logFence(t, s)
		want := map[string]any{"transport": "rest", "method": tc.method, "route": tc.route, "status": tc.status, "client": "127.0.0.1"}
		if tc.code != "" {
			want["code"], want["subject"] = tc.code, "e2e-admin"
		}
		l := wantOneLine(t, s, rid, want)
		if _, ok := l["code"]; tc.code == "" && ok {
			t.Errorf("%s %s: a code without a call: %v", tc.method, tc.path, l)
		}

		after := string(s.do(t, "GET", "/metrics", "").Body)
		labels := fmt.Sprintf(`code="%d",method="%s",route="%s",transport="rest"`, tc.status, tc.method, tc.route)
		if n := metricSum(t, after, "usersd_http_requests_total", labels) - metricSum(t, before, "usersd_http_requests_total", labels); n != 1 {
			t.Errorf("usersd_http_requests_total{%s} rose by %v, want 1", labels, n)
		}
		before = after
	}
}

// With a trusted proxy in front, the client is the address it forwards;
// the TCP peer stays in the line.
func TestAccessLogTrustedProxies(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--trusted-proxies", "127.0.0.0/8")
	c := newPeerClient(t)
	rid := evRID("proxied")
	// The left entry was written by the client itself: not believed.
	if st := c.do(t, s, "GET", "/v1/users?limit=1", http.Header{
		"Authorization": {"Bearer " + adminToken}, "X-Request-Id": {rid},
		"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"},
	}); st != http.StatusOK {
		t.Fatalf("list: %d", st)
	}
	g, local := peerGRPC(t, s)
	grpcRID := evRID("proxied-grpc")
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-request-id", grpcRID, "x-forwarded-for", "203.0.113.10")
	if _, err := g.ListUsers(ctx, &usersv1.ListUsersRequest{}); err != nil {
		t.Fatal(err)
	}
	logFence(t, s)
	wantOneLine(t, s, rid, map[string]any{"transport": "rest", "client": "203.0.113.9", "peer": c.addr()})
	wantOneLine(t, s, grpcRID, map[string]any{"transport": "grpc", "client": "203.0.113.10", "peer": local()})
}

// At debug level each stage of the chain says what it decided, on both
// transports, and successful probes are logged.
func TestDebugLogShowsDecisions(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--log-level", "debug")
	auditor, subject := evToken(t, "dbg-auditor", auth.RoleAuditor)
	rid := evRID("dbg-rest")
	wantError(t, evDo(t, s, auditor, rid, "GET", "/v1/users/"+missingID, ""), http.StatusForbidden, "Forbidden")
	grpcRID := evRID("dbg-grpc")
	_, err := evGRPC(t, s, "").ListUsers(evCtx(t, grpcRID), &usersv1.ListUsersRequest{})
	wantCode(t, err, codes.Unauthenticated)
	healthRID := evRID("dbg-health")
	if r := s.do(t, "GET", "/healthz", "", "X-Request-Id", healthRID); r.Status != http.StatusOK {
		t.Fatalf("/healthz: %d", r.Status)
	}
	logFence(t, s)

	decisions := func(rid string) []string {
		var out []string
		for _, l := range logLines(t, s) {
			if l["msg"] == "decision" && l["request_id"] == rid {
				if l["level"] != "DEBUG" {
					t.Errorf("decision at %v: %v", l["level"], l)
				}
				d := fmt.Sprintf("%v %v", l["stage"], l["decision"])
				for _, k := range []string{"subject", "event", "reason"} {
					if v, ok := l[k]; ok {
						d += fmt.Sprintf(" %s=%v", k, v)
					}
				}
				out = append(out, d)
			}
		}
		return out
	}
	want := []string{
		"in_flight admitted",
		"authentication authenticated subject=" + subject,
		"events recorded event=USER_RETRIEVE_START",
		"authorization refused reason=ROLE_REQUIRED",
	}
	if got := decisions(rid); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("REST decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{"in_flight admitted", "authentication refused reason=MISSING_TOKEN"}
	if got := decisions(grpcRID); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("gRPC decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantOneLine(t, s, rid, map[string]any{"level": "INFO", "status": 403, "code": "PermissionDenied", "subject": subject})
	wantOneLine(t, s, healthRID, map[string]any{"level": "DEBUG", "route": "/healthz", "status": 200})
	if strings.Contains(s.logs.String(), auditor) {
		t.Error("the token appears in the debug log")
	}
}

// A body past the limit is answered with 413 as soon as the limit is
// crossed, though the client then stalls: net/http must be told (through
// the middleware's response writer) to close the connection rather than
// read on through the rest of the body first.
func TestOversizedBodyAnsweredWhileClientStalls(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	conn, err := net.Dial("tcp", s.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := `{"claims":{"k":"` + strings.Repeat("x", 70<<10)
	fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", adminToken, len(chunk), chunk)
	// No last chunk: the client stalls. The read timeout is 30 s.
	conn.SetReadDeadline(time.Now().Add(wait(10 * time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response while the client stalls: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("status %d, close %v; want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
}
