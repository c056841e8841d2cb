package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// The gRPC transport bounds (contract §3), seen by a raw HTTP/2 client;
// and REST, which calls the service in process through no connection,
// unaffected by them.

// waitGoAway waits (bounded) for the server to send the client away.
func (h *h2conn) waitGoAway(t *testing.T) *http2.GoAwayFrame {
	t.Helper()
	limit := wait(10 * time.Second)
	select {
	case <-h.away:
	case <-h.closed:
	case <-time.After(limit):
		t.Fatalf("no GOAWAY in %v", limit)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.goAway == nil {
		t.Fatal("connection closed without a GOAWAY")
	}
	return h.goAway
}

// serverSettings waits (at most timeout) for the server's SETTINGS.
func (h *h2conn) serverSettings(timeout time.Duration) (map[http2.SettingID]uint32, error) {
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		got := h.settings
		h.mu.Unlock()
		if got != nil {
			m := map[http2.SettingID]uint32{}
			for _, s := range got {
				m[s.ID] = s.Val
			}
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no SETTINGS from the server in %v", timeout)
		}
		select {
		case <-h.closed:
			return nil, errors.New("connection closed before SETTINGS")
		case <-time.After(10 * time.Millisecond): // the reader stores them
		}
	}
}

func dialRaw(t *testing.T, s *server) *h2conn {
	t.Helper()
	h, err := dialH2(s.GRPCAddr, time.Now().Add(wait(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func TestGRPCTransportSettings(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	got, err := dialRaw(t, s).serverSettings(wait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got[http2.SettingMaxConcurrentStreams] != 100 || got[http2.SettingMaxHeaderListSize] != 64<<10 {
		t.Fatalf("server SETTINGS %v, want 100 concurrent streams and 64 KiB of headers", got)
	}
}

// A client pinging more often than the keepalive policy allows is sent
// away; with or without calls in flight the policy is the same.
func TestGRPCKeepalivePingFlood(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	h := dialRaw(t, s)
	for i := range 5 {
		if err := h.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if ga := h.waitGoAway(t); ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
		t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
	}
}

func TestGRPCIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--grpc-max-connection-idle", "300ms")
	// Before the dial: the server's idle clock starts when it accepts,
	// which may come before dialRaw returns.
	began := time.Now()
	h := dialRaw(t, s)
	if ga := h.waitGoAway(t); ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v, want NO_ERROR", ga.ErrCode)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before the idle limit", took)
	}
}

// Connections beyond the limit wait to be accepted; a closed one makes
// room.
func TestGRPCConnectionLimit(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--grpc-max-connections", "2")
	first, second := dialRaw(t, s), dialRaw(t, s)
	for _, h := range []*h2conn{first, second} {
		if _, err := h.serverSettings(wait(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	third := dialRaw(t, s)
	// Waiting is the point: the third connection must not be served
	// while two are open.
	if _, err := third.serverSettings(300 * time.Millisecond); err == nil {
		t.Fatal("a third connection was served with --grpc-max-connections 2")
	}
	first.close()
	if _, err := third.serverSettings(wait(10 * time.Second)); err != nil {
		t.Fatalf("after one of two connections closed: %v", err)
	}
	if r := s.do(t, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
		t.Fatalf("REST (in process, not limited) while the limit is held: %d %s", r.Status, r.Body)
	}
}

// 200 REST calls at once, within --max-in-flight (256), are all served:
// none is shed.
func TestRESTConcurrentWithinInFlight(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{}`)["id"].(string)
	failures := restLoad(t, s, id, 200, func(n int) bool { return n < 5 })
	if len(failures) > 0 {
		t.Fatalf("%d of 1000 concurrent REST calls failed, e.g. %s", len(failures), failures[0])
	}
}

// Native connections are sent away at their maximum age and their calls
// keep working across the reconnections, as REST calls (in process, no
// connection to age) do meanwhile.
func TestCallsAcrossConnectionAge(t *testing.T) {
	t.Parallel()
	const age = 300 * time.Millisecond
	s := start(t, "", "--grpc-max-connection-age", age.String(), "--grpc-max-connection-age-grace", "10s")
	id := createUser(t, s, `{}`)["id"].(string)

	// The age limit holds on the TCP port.
	raw := dialRaw(t, s)
	if ga := raw.waitGoAway(t); ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY at max age: %v, want NO_ERROR", ga.ErrCode)
	}

	// Load for several ages (grpc-go adds ±10% jitter).
	until := time.Now().Add(8 * age)
	var grpcCalls, grpcFailed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for time.Now().Before(until) {
			grpcCalls.Add(1)
			if _, err := s.grpc().GetUser(context.Background(), &usersv1.GetUserRequest{Id: id}); err != nil {
				grpcFailed.Add(1)
				t.Errorf("native GetUser across connection ages: %v", err)
			}
		}
	})
	failures := restLoad(t, s, id, 150, func(int) bool { return time.Now().Before(until) })
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d REST calls failed across connection ages, e.g. %s", len(failures), failures[0])
	}
	t.Logf("%d native calls (%d failed) across ~8 connection ages", grpcCalls.Load(), grpcFailed.Load())
}

// restLoad runs callers concurrent REST GetUser loops while more(n) holds
// for their n-th call, and returns the failures.
func restLoad(t *testing.T, s *server, id string, callers int, more func(n int) bool) []string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}, Timeout: wait(30 * time.Second)}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for n := 0; more(n); n++ {
				req, err := http.NewRequest("GET", "http://"+s.HTTPAddr+"/v1/users/"+id, nil)
				if err != nil {
					panic(err)
				}
				req.Header.Set("Authorization", "Bearer "+adminToken)
				resp, err := client.Do(req)
				var failure string
				if err != nil {
					failure = err.Error()
				} else {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failure = resp.Status
					}
				}
				if failure != "" {
					mu.Lock()
					failures = append(failures, failure)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failures
}

// REST headers beyond what a native call may send as gRPC metadata
// (64 KiB) are refused with 431, never a 5xx; smaller ones get the answer
// the API gives (401 for these tokens).
func TestRESTHeadersBeyondGRPCMetadataLimit(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	var saw401, saw431 bool
	try := func(desc string, h http.Header) {
		r := s.send(t, "GET", "/v1/users", "", h)
		switch r.Status {
		case http.StatusUnauthorized:
			saw401 = true
		case http.StatusRequestHeaderFieldsTooLarge:
			saw431 = true
		default:
			t.Fatalf("%s: %d %s, want 401 or 431", desc, r.Status, r.Body)
		}
	}
	for n := 1; n <= 2000; n += 37 { // many small fields: HPACK counts 32 bytes more each
		h := http.Header{}
		for range n {
			h.Add("Authorization", "Bearer x")
		}
		try(fmt.Sprintf("%d Authorization headers", n), h)
	}
	for size := 1 << 10; size <= 66<<10; size += 5 << 10 { // one large field
		try(fmt.Sprintf("a %d-byte token", size), http.Header{"Authorization": {"Bearer " + strings.Repeat("a", size)}})
	}
	if !saw401 || !saw431 {
		t.Fatalf("saw 401 %v, 431 %v: the sizes did not straddle the limit", saw401, saw431)
	}
}
