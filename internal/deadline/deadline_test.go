package deadline

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

func TestUnaryServerInterceptorOnlyShortens(t *testing.T) {
	const bound = time.Minute
	for _, tc := range []struct {
		name   string
		client time.Duration // 0: no client deadline
		want   time.Duration // remaining time the handler sees, about
	}{
		{"case=no client deadline gets the bound", 0, bound},
		{"case=a later client deadline is shortened", time.Hour, bound},
		{"case=a sooner client deadline stays", 5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.client > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.client)
				defer cancel()
			}
			var left time.Duration
			_, err := UnaryServerInterceptor(bound)(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
				dl, ok := ctx.Deadline()
				if !ok {
					t.Fatal("the handler's context has no deadline")
				}
				left = time.Until(dl)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if left > tc.want || left < tc.want-time.Second {
				t.Errorf("the handler has %v left, want about %v", left, tc.want)
			}
		})
	}
}

// A client deadline within the bound costs nothing: the handler gets the
// call's own context.
func TestUnaryServerInterceptorKeepsASoonerDeadlineAsItIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	icpt := UnaryServerInterceptor(time.Minute)
	handler := func(got context.Context, _ any) (any, error) {
		if got != ctx {
			t.Error("the handler got a derived context")
		}
		return nil, nil
	}
	if n := testing.AllocsPerRun(10, func() { _, _ = icpt(ctx, nil, &grpc.UnaryServerInfo{}, handler) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
