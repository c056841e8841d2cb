package requestid

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	cases := map[string]bool{
		"abc":                     true,
		"A-b_c.9":                 true,
		strings.Repeat("a", 128):  true,
		"":                        false,
		strings.Repeat("a", 129):  false,
		"has space":               false,
		"new\nline":               false,
		"semi;colon":              false,
		"unicode-é":               false,
		"0190a7c2-7e3b-7c41-9f3e": true,
	}
	for id, want := range cases {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestNewIsValidAndUnique(t *testing.T) {
	a, b := New(), New()
	if !Valid(a) || !Valid(b) || a == b {
		t.Fatalf("New() gave %q and %q", a, b)
	}
}

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		keep       bool
	}{
		{"case=valid id kept", "req-123", true},
		{"case=invalid id replaced", "bad id!", false},
		{"case=missing id generated", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seenHeader, seenCtx string
			h := Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				seenHeader, seenCtx = r.Header.Get(Header), FromContext(r.Context())
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.sent != "" {
				req.Header.Set(Header, tc.sent)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get(Header)
			if !Valid(got) || got != seenHeader || got != seenCtx {
				t.Fatalf("response %q, forwarded %q, context %q: want one valid id", got, seenHeader, seenCtx)
			}
			if (got == tc.sent) != tc.keep {
				t.Fatalf("sent %q, got %q, keep=%v", tc.sent, got, tc.keep)
			}
		})
	}
}

func TestFromContextEmpty(t *testing.T) {
	if got := FromContext(context.Background()); got != "" {
		t.Fatalf("FromContext(empty) = %q", got)
	}
}
