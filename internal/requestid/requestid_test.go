package requestid

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
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

// headerStream keeps what a handler sets with grpc.SetHeader.
type headerStream struct {
	grpc.ServerTransportStream
	header metadata.MD
}

func (s *headerStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

// A gRPC call takes a valid id from its metadata, or a new one, and
// announces it; a call made in process for an HTTP request keeps the id
// Middleware put in its context, whatever the metadata says.
func TestUnaryServerInterceptor(t *testing.T) {
	const sent, inHTTP = "from-metadata", "from-http-middleware"
	cases := []struct {
		name string
		ctx  context.Context
		want string // "": a new id
	}{
		{"valid metadata", metadata.NewIncomingContext(context.Background(), metadata.Pairs(MetadataKey, sent)), sent},
		{"invalid metadata", metadata.NewIncomingContext(context.Background(), metadata.Pairs(MetadataKey, "bad id!")), ""},
		{"no metadata", context.Background(), ""},
		{"in process", NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs(MetadataKey, sent)), inHTTP), inHTTP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := &headerStream{}
			ctx := grpc.NewContextWithServerTransportStream(tc.ctx, stream)
			var seen string
			_, err := UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
				seen = FromContext(ctx)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !Valid(seen) || tc.want != "" && seen != tc.want || tc.want == "" && (seen == sent || seen == inHTTP) {
				t.Errorf("handler saw id %q, want %q (\"\": a new one)", seen, tc.want)
			}
			if got := stream.header.Get(MetadataKey); len(got) != 1 || got[0] != seen {
				t.Errorf("announced %q, want [%q]", got, seen)
			}
		})
	}
}
