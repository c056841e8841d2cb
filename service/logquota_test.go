package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
)

type logLine struct {
	msg    string
	fields []any
}

// quotaUnderTest is a logQuota on a fake clock whose reports run when the
// test says so.
type quotaUnderTest struct {
	*logQuota
	lines     []logLine
	clock     time.Time
	scheduled []func()
}

func newQuotaUnderTest() *quotaUnderTest {
	q := &quotaUnderTest{clock: time.Unix(1_700_000_000, 0)}
	q.logQuota = newLogQuota(logging.LoggerFunc(func(_ context.Context, _ logging.Level, msg string, fields ...any) {
		q.lines = append(q.lines, logLine{msg, fields})
	}))
	q.now = func() time.Time { return q.clock }
	q.after = func(d time.Duration, f func()) {
		if d != unauthenticatedReport {
			panic(fmt.Sprintf("report scheduled after %v", d))
		}
		q.scheduled = append(q.scheduled, f)
	}
	return q
}

func (q *quotaUnderTest) finished(code string, n int) {
	for range n {
		q.Log(context.Background(), logging.LevelInfo, "finished call", "grpc.service", "users.v1.UserService", "grpc.code", code)
	}
}

// runReports runs the scheduled reports and returns the suppressed counts
// they logged.
func (q *quotaUnderTest) runReports(t *testing.T) []int {
	t.Helper()
	due := q.scheduled
	q.scheduled = nil
	before := len(q.lines)
	for _, f := range due {
		f()
	}
	var counts []int
	for _, l := range q.lines[before:] {
		n, ok := field(l.fields, "suppressed").(int)
		if !ok {
			t.Fatalf("report without a count: %v", l)
		}
		counts = append(counts, n)
	}
	return counts
}

func field(fields []any, key string) any {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == key {
			return fields[i+1]
		}
	}
	return nil
}

func TestLogQuotaBoundsUnauthenticated(t *testing.T) {
	q := newQuotaUnderTest()
	q.finished("Unauthenticated", 1000)
	q.finished("OK", 50)
	q.finished("PermissionDenied", 50)
	if got, want := len(q.lines), unauthenticatedBurst+100; got != want {
		t.Fatalf("%d lines logged, want the burst of %d UNAUTHENTICATED and every other one (%d)", got, unauthenticatedBurst, want)
	}
	if len(q.scheduled) != 1 {
		t.Fatalf("%d reports scheduled, want one for the whole run of dropped lines", len(q.scheduled))
	}
	if got := q.runReports(t); len(got) != 1 || got[0] != 1000-unauthenticatedBurst {
		t.Fatalf("reported %v suppressed, want [%d]", got, 1000-unauthenticatedBurst)
	}

	// One second later the bucket has refilled by the steady rate.
	q.clock = q.clock.Add(time.Second)
	before := len(q.lines)
	q.finished("Unauthenticated", 100)
	if got := len(q.lines) - before; got != unauthenticatedPerSecond {
		t.Fatalf("%d lines logged a second later, want %d", got, unauthenticatedPerSecond)
	}
	if got := q.runReports(t); len(got) != 1 || got[0] != 100-unauthenticatedPerSecond {
		t.Fatalf("reported %v suppressed, want [%d]", got, 100-unauthenticatedPerSecond)
	}
	if got := q.runReports(t); got != nil {
		t.Fatalf("reports %v with nothing dropped since the last", got)
	}
}

func TestLogQuotaPassesOtherLines(t *testing.T) {
	q := newQuotaUnderTest()
	q.finished("Unauthenticated", unauthenticatedBurst) // empty the bucket
	for _, fields := range [][]any{
		nil,
		{"grpc.code"}, // no value
		{"grpc.code", "OK", "note", "Unauthenticated"},
		{"note", "grpc.code", "grpc.code", "Internal"},
	} {
		before := len(q.lines)
		q.Log(context.Background(), logging.LevelInfo, "line", fields...)
		if len(q.lines) != before+1 {
			t.Errorf("line with fields %v dropped", fields)
		}
	}
	if len(q.scheduled) != 0 {
		t.Fatal("a report was scheduled though nothing was dropped")
	}
}
