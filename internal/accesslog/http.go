package accesslog

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/usersd/usersd/internal/requestid"
)

// Middleware logs and counts every request next serves, refusals
// included: it belongs outside everything that can answer a request
// (header limits, routing, the body guard), and inside
// requestid.Middleware, whose id it logs. The handlers below note what
// only they know: the route template (NoteRoute, NoteProbe) and the gRPC
// call made (NoteCall).
func (rc *Recorder) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{ResponseWriter: w, e: entry{
			start: time.Now(), transport: REST, method: r.Method,
			peer: r.RemoteAddr, forwarded: r.Header.Values("X-Forwarded-For"),
		}}
		e := &rw.e
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), entryKey{}, e)))
		took := time.Since(e.start)
		if e.status == 0 {
			e.status = http.StatusOK // nothing written: net/http sends 200
		}
		if e.route == "" {
			e.route = Unmatched
		}
		method := metricMethod(r.Method)
		rc.httpRequests.WithLabelValues(method, e.route, statusLabel(e.status)).Inc()
		rc.httpDuration.WithLabelValues(method, e.route).Observe(took.Seconds())
		e.requestID = requestid.FromContext(r.Context())
		rc.write(r.Context(), e, took)
	})
}

// responseWriter keeps the status of the response, in the same allocation
// as the entry.
type responseWriter struct {
	http.ResponseWriter
	e entry
}

func (w *responseWriter) WriteHeader(code int) {
	if w.e.status == 0 && code >= 200 { // 1xx are interim
		w.e.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.e.status == 0 {
		w.e.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metricMethod bounds the method label: clients may send any token.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusLabels spares strconv on every request.
var statusLabels = func() (s [600]string) {
	for code := 100; code < len(s); code++ {
		s[code] = strconv.Itoa(code)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
