package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/usersd/usersd/internal/rpcerr"
)

// Retry-After comes from the status's RetryInfo, in whole seconds rounded
// up; without one, 429 and 503 still say when to retry.
func TestErrorHandlerRetryAfter(t *testing.T) {
	g := &Gateway{log: slog.New(slog.DiscardHandler), routes: testRoutes}
	for _, tc := range []struct {
		code  codes.Code
		delay time.Duration // 0: no RetryInfo
		want  string
		word  string
	}{
		{codes.ResourceExhausted, 3 * time.Second, "3", "TooManyRequests"},
		{codes.ResourceExhausted, 1500 * time.Millisecond, "2", "TooManyRequests"},
		{codes.Unavailable, 10 * time.Millisecond, "1", "ServiceUnavailable"},
		{codes.Unavailable, 0, "1", "ServiceUnavailable"},
	} {
		var err error
		if tc.delay > 0 {
			err = rpcerr.New(tc.code, "retry later", "TEST", &errdetails.RetryInfo{RetryDelay: durationpb.New(tc.delay)})
		} else {
			err = rpcerr.New(tc.code, "retry later", "TEST")
		}
		rec := httptest.NewRecorder()
		g.errorHandler(t.Context(), nil, nil, rec, httptest.NewRequest("GET", "/v1/users", nil), err)
		if got := rec.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("%v %v: Retry-After %q, want %q", tc.code, tc.delay, got, tc.want)
		}
		if !hasErrorWord(t, rec.Body.Bytes(), tc.word) {
			t.Errorf("%v: body %s", tc.code, rec.Body)
		}
	}
}

// hasErrorWord reports whether body is the error body with the given code word.
func hasErrorWord(t *testing.T, body []byte, word string) bool {
	t.Helper()
	var b errorBody
	return json.Unmarshal(body, &b) == nil && b.Code == word && b.Message != ""
}
