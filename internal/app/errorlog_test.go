package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// A flood of net/http error lines (as bad TLS handshakes cause) is logged
// at a bounded rate.
func TestHTTPErrorLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := httpErrorLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	for range 1000 {
		l.Print("http: TLS handshake error from 127.0.0.1:1234: EOF")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 10 || len(lines) > 20 {
		t.Fatalf("%d lines logged for 1000 errors, want about the burst of 10", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["level"] != "WARN" || !strings.Contains(rec["msg"].(string), "TLS handshake error") {
		t.Fatalf("first line %s (%v)", lines[0], err)
	}
}

// The first line that passes after a drop says how many were dropped.
func TestLimitedHandlerCountsDrops(t *testing.T) {
	var buf bytes.Buffer
	lim := rate.NewLimiter(0, 1) // one line, then none until the test allows more
	log := slog.New(&limitedHandler{Handler: slog.NewJSONHandler(&buf, nil), lim: lim, dropped: new(atomic.Int64)})
	for range 6 {
		log.Warn("x")
	}
	lim.SetLimit(rate.Inf)
	log.Warn("y")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed_before":5`) || strings.Contains(lines[0], "suppressed") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}
