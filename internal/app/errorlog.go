package app

import (
	"context"
	"log"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// httpErrorLog is net/http's own error log (failed TLS handshakes, bad
// request framing, accept errors) at a bounded rate: clients trigger
// these lines at will, so a flood of bad handshakes must not flood the
// log. Lines beyond the rate are counted; the next line that passes says
// how many were dropped before it.
func httpErrorLog(log *slog.Logger) *log.Logger {
	h := &limitedHandler{Handler: log.Handler(), lim: rate.NewLimiter(5, 10), dropped: new(atomic.Int64)}
	return slog.NewLogLogger(h, slog.LevelWarn)
}

// limitedHandler passes records on while its token bucket allows.
type limitedHandler struct {
	slog.Handler
	lim     *rate.Limiter
	dropped *atomic.Int64 // shared with the handlers WithAttrs and WithGroup derive
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.lim.Allow() {
		h.dropped.Add(1)
		return nil
	}
	if n := h.dropped.Swap(0); n > 0 {
		r.AddAttrs(slog.Int64("suppressed_before", n))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithAttrs(attrs), lim: h.lim, dropped: h.dropped}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithGroup(name), lim: h.lim, dropped: h.dropped}
}
