package limits

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/rpcerr"
)

// wantRefusal asserts a status with our ErrorInfo reason and a RetryInfo.
func wantRefusal(t *testing.T, err error, code codes.Code, reason string) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("code %v (%v), want %v", st.Code(), err, code)
	}
	if info := rpcerr.Info(st); info.GetReason() != reason {
		t.Fatalf("reason %q, want %q", info.GetReason(), reason)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatal("no RetryInfo")
	return 0
}

func TestInFlightShedsBeyondTheBounds(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := NewInFlight(3, 1, func(m string) bool { return m == "/w" }, reg)
	icpt := l.UnaryServerInterceptor()

	// Calls that block until released, holding their slots.
	release := make(chan struct{})
	var started, done sync.WaitGroup
	hold := func(method string) {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			_, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
				started.Done()
				<-release
				return "ok", nil
			})
			if err != nil {
				t.Errorf("admitted call failed: %v", err)
			}
		}()
	}
	call := func(method string) error {
		_, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", nil })
		return err
	}

	hold("/w")
	started.Wait()
	// The one write slot is taken: another write is shed, a read is not.
	if d := wantRefusal(t, call("/w"), codes.Unavailable, ReasonOverloaded); d != time.Second {
		t.Errorf("retry delay %v", d)
	}
	if err := call("/r"); err != nil {
		t.Fatalf("read refused with a free slot: %v", err)
	}
	hold("/r")
	hold("/r")
	started.Wait()
	// All three slots are taken: everything is shed at once.
	wantRefusal(t, call("/r"), codes.Unavailable, ReasonOverloaded)
	close(release)
	done.Wait()
	// Slots come back when calls finish.
	for range 5 {
		if err := call("/w"); err != nil {
			t.Fatalf("after release: %v", err)
		}
	}
	if got := testutil.ToFloat64(l.shed.WithLabelValues("writes")); got != 1 {
		t.Errorf("writes shed counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(l.shed.WithLabelValues("all")); got != 1 {
		t.Errorf("all shed counted %v, want 1", got)
	}
}

func TestInFlightUnbounded(t *testing.T) {
	l := NewInFlight(0, 0, func(string) bool { return true }, nil)
	icpt := l.UnaryServerInterceptor()
	// Nested calls would deadlock or be refused with any bound.
	var nest func(depth int) error
	nest = func(depth int) error {
		_, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/w"}, func(context.Context, any) (any, error) {
			if depth == 0 {
				return nil, nil
			}
			return nil, nest(depth - 1)
		})
		return err
	}
	if err := nest(100); err != nil {
		t.Fatal(err)
	}
}

type callerKey struct{}

func TestCallerRate(t *testing.T) {
	if _, err := NewCallerRate(0, 1, nil); err == nil {
		t.Error("rate 0 accepted")
	}
	if _, err := NewCallerRate(1, 0, nil); err == nil {
		t.Error("burst 0 accepted")
	}
	c, err := NewCallerRate(2, 3, func(ctx context.Context) string { return ctx.Value(callerKey{}).(string) })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// A burst of 3, then refused, with the wait rounded up to a second.
	for i := range 3 {
		if wait := c.take("alice", now); wait != 0 {
			t.Fatalf("call %d of the burst waited %v", i+1, wait)
		}
	}
	if wait := c.take("alice", now); wait != time.Second {
		t.Fatalf("fourth call: wait %v, want 1s", wait)
	}
	// A refusal spends nothing: half a second later (2/s) one token is back.
	if wait := c.take("alice", now.Add(500*time.Millisecond)); wait != 0 {
		t.Fatalf("after 500ms: wait %v", wait)
	}
	if wait := c.take("alice", now.Add(500*time.Millisecond)); wait == 0 {
		t.Fatal("the bucket refilled beyond its rate")
	}
	// Another caller has a bucket of its own.
	if wait := c.take("bob", now); wait != 0 {
		t.Fatalf("bob waited %v because of alice", wait)
	}

	// Through the interceptor: RESOURCE_EXHAUSTED with our reason and the
	// retry delay, and the handler is not run.
	icpt := c.UnaryServerInterceptor()
	ctx := context.WithValue(context.Background(), callerKey{}, "carol")
	ran := 0
	handler := func(context.Context, any) (any, error) { ran++; return "ok", nil }
	var last error
	for range 4 {
		_, last = icpt(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/m"}, handler)
	}
	if ran != 3 {
		t.Fatalf("handler ran %d times, want 3", ran)
	}
	if d := wantRefusal(t, last, codes.ResourceExhausted, ReasonRateLimited); d < time.Second {
		t.Errorf("retry delay %v", d)
	}
}

func TestCallerRateBoundedMemory(t *testing.T) {
	c, err := NewCallerRate(1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range maxTrackedCallers + 500 {
		c.take(string(rune(i)), now)
	}
	if n := c.buckets.Len(); n != maxTrackedCallers {
		t.Fatalf("%d buckets kept, want %d", n, maxTrackedCallers)
	}
}
