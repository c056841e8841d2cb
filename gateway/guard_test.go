package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/usersd/usersd/gateway/jsonbody"
	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
)

func TestCheckQuery(t *testing.T) {
	list, events, put := testRoute(t, "ListUsers"), testRoute(t, "ListEvents"), testRoute(t, "UpdateUser")
	for _, tc := range []struct {
		name    string
		rt      *route
		query   string
		forward string   // the query the gateway's parser gets
		details []string // param@location=value
	}{
		{"case=known parameters, by either name", list, "limit=5&cursor=abc", "cursor=abc&limit=5", nil},
		{"case=unknown parameters are dropped", list, "limit=5&x=1&limit[x]=2&cursor.x=3&user.id=4", "limit=5", nil},
		{"case=unknown parameters with bad encoding are dropped", list, "x=%ff&y=%zz&%zz=1&%ff=2", "", nil},
		{"case=semicolon is data", list, "cursor=a;b", "cursor=a%3Bb", nil},
		{"case=invalid UTF-8 in cursor", list, "cursor=%ff", "", []string{"cursor@query=%ff"}},
		{"case=overlong encoding in cursor", list, "cursor=%C0%AF", "", []string{"cursor@query=%C0%AF"}},
		{"case=bad escape in limit", list, "limit=%zz", "", []string{"limit@query=%zz"}},
		{"case=invalid UTF-8 by proto name", events, "request_ids=%ff", "", []string{"requestIds@query=%ff"}},
		{"case=every events filter", events, "ids=%ff&requestIds=%ff&types=%ff&categories=%ff&dateFrom=%ff&dateTo=%ff&limit=%ff&cursor=%ff", "",
			[]string{"ids@query=%ff", "requestIds@query=%ff", "types@query=%ff", "categories@query=%ff", "dateFrom@query=%ff", "dateTo@query=%ff", "limit@query=%ff", "cursor@query=%ff"}},
		{"case=one field by both names", events, "requestIds=a&request_ids=b", "", []string{"requestIds@query=a"}},
		{"case=twice", list, "limit=1&limit=2", "", []string{"limit@query=1"}},
		{"case=not a number", list, "limit=abc", "", []string{"limit@query=abc"}},
		{"case=update mask is the guard's", put, "updateMask=%ff&update_mask=x", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			query, details := checkQuery(tc.rt, tc.query)
			var got []string
			for _, d := range details {
				if d.Msg == "" {
					t.Errorf("detail without msg: %+v", d)
				}
				got = append(got, d.Param+"@"+d.Location+"="+d.Value)
			}
			if strings.Join(got, " ") != strings.Join(tc.details, " ") {
				t.Errorf("details %q, want %q", got, tc.details)
			}
			if tc.details == nil && query.Encode() != tc.forward {
				t.Errorf("forwarded %q, want %q", query.Encode(), tc.forward)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	get := testRoute(t, "GetUser")
	if d := checkPath(get, map[string]string{"id": "not-a-uuid"}); d != nil {
		t.Fatalf("a well-formed string was refused: %+v", d)
	}
	for _, id := range []string{"\xff", "\xc0\xaf", "a\xed\xa0\x80"} {
		d := checkPath(get, map[string]string{"id": id})
		if len(d) != 1 || d[0].Param != "id" || d[0].Location != locParams || d[0].Msg == "" {
			t.Fatalf("checkPath(%q) = %+v", id, d)
		}
	}
	if got := encodable(map[string]string{"id": "\xff", "other": "ok"}); got["id"] != "" || got["other"] != "ok" || len(got) != 2 {
		t.Fatalf("encodable = %q", got)
	}
}

func TestDropGatewayHeaders(t *testing.T) {
	h := map[string][]string{
		"Grpc-Timeout": {"1n"}, "grpc-timeout": {"1n"}, "Grpc-Metadata-Authorization": {"Bearer x"},
		"grpc-metadata-x-request-id": {"a"}, "GRPC-METADATA-": {"b"},
		"Authorization": {"Bearer t"}, "X-Request-Id": {"r"}, "Grpc-Other": {"kept"},
	}
	dropGatewayHeaders(h)
	if len(h) != 3 || h["Authorization"] == nil || h["X-Request-Id"] == nil || h["Grpc-Other"] == nil {
		t.Fatalf("left %v", h)
	}
}

// The update mask of a PUT is exactly the top-level keys of its body the
// check found, a null included (it clears), sorted (the query's is never
// forwarded: see TestCheckQuery and TestPUTReachesServiceWithMaskFromBodyKeys).
func TestMaskPaths(t *testing.T) {
	put := testRoute(t, "UpdateUser")
	for _, tc := range []struct {
		name, body, want string
	}{
		{"case=claims", `{"claims":{"a":1}}`, "claims"},
		{"case=null claims", `{"claims":null}`, "claims"},
		{"case=null provider, by JSON name", `{"authenticationProvider":null}`, "authentication_provider"},
		{"case=provider by proto name", `{"authentication_provider":{}}`, "authentication_provider"},
		{"case=both, sorted", `{"claims":{},"authenticationProvider":null}`, "authentication_provider,claims"},
		{"case=id is a key like the others", `{"id":"x","claims":{}}`, "claims,id"},
		{"case=all three", `{"id":"x","authenticationProvider":null,"claims":{}}`, "authentication_provider,claims,id"},
		{"case=no keys", `{}`, ""},
		{"case=no body", ``, ""},
		{"case=unknown keys ignored", `{"nope":1,"user":{},"claims":{}}`, "claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := put.maskPaths(jsonbody.Decode([]byte(tc.body), put.bodyType.New(), jsonbody.Limits{})); got != tc.want {
				t.Fatalf("mask %q, want %q", got, tc.want)
			}
		})
	}
}

// updatesSeen answers UpdateUser and keeps the requests it got.
type updatesSeen struct {
	usersv1.UnimplementedUserServiceServer
	reqs chan *usersv1.UpdateUserRequest
}

func (u updatesSeen) UpdateUser(_ context.Context, req *usersv1.UpdateUserRequest) (*usersv1.UpdateUserResponse, error) {
	u.reqs <- req
	return &usersv1.UpdateUserResponse{User: &usersv1.User{Id: req.GetId()}}, nil
}

// Through the gateway, a PUT reaches the service with the mask its body
// keys make, whatever the client put in the query under either name: the
// gRPC request always has a mask, so "no mask" semantics never apply to
// REST.
func TestPUTReachesServiceWithMaskFromBodyKeys(t *testing.T) {
	seen := updatesSeen{reqs: make(chan *usersv1.UpdateUserRequest, 1)}
	h, err := New(t.Context(), inProcessConn(seen), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 16, MaxJSONDepth: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"
	for _, tc := range []struct {
		name, query, body string
		paths             []string
		claimsSet         bool
	}{
		{"case=claims", "", `{"claims":{"a":1}}`, []string{"claims"}, true},
		{"case=null claims clear", "", `{"claims":null}`, []string{"claims"}, false},
		{"case=null provider unlinks", "", `{"authenticationProvider":null}`, []string{"authentication_provider"}, false},
		{"case=both", "", `{"authenticationProvider":null,"claims":{}}`, []string{"authentication_provider", "claims"}, true},
		{"case=id", "", `{"id":"` + id + `"}`, []string{"id"}, false},
		{"case=empty object", "", `{}`, nil, false},
		{"case=updateMask in the query ignored", "?updateMask=authenticationProvider", `{"claims":{}}`, []string{"claims"}, true},
		{"case=update_mask in the query ignored", "?update_mask=claims&updateMask=claims", `{}`, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/v1/users/"+id+tc.query, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var req *usersv1.UpdateUserRequest
			select {
			case req = <-seen.reqs:
			default:
				t.Fatal("the service got no UpdateUser")
			}
			if req.GetUpdateMask() == nil || !slices.Equal(req.GetUpdateMask().GetPaths(), tc.paths) {
				t.Fatalf("update mask %v, want paths %q", req.GetUpdateMask(), tc.paths)
			}
			if (req.GetUser().GetClaims() != nil) != tc.claimsSet {
				t.Fatalf("claims %v, want set: %v", req.GetUser().GetClaims(), tc.claimsSet)
			}
		})
	}
}

// Each kind of refusal reaches the gRPC server as its own reason in the
// call's metadata, and only refused requests carry one (a client's header
// of that name is no mark); the server's refusal is then rendered with the
// status of the reason. One gateway, so each route is guarded by its own
// checks.
func TestRefusalsReachTheServerAsReasons(t *testing.T) {
	marks := make(chan []string, 1)
	// As the real server's gateway-rejections stage: fail a marked call.
	rejections := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		mark := metadata.ValueFromIncomingContext(ctx, rpcerr.RejectedMetadata)
		marks <- mark
		if len(mark) > 0 {
			return nil, rpcerr.Rejected(mark[0])
		}
		return handler(ctx, req)
	}
	h, err := New(t.Context(), inProcessConn(usersv1.UnimplementedUserServiceServer{}, rejections), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 64, MaxJSONDepth: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"
	for _, tc := range []struct {
		method, path, body string
		header             []string // name, value
		reason             string   // "": not refused
		status             int
		message            string
	}{
		{"GET", "/v1/users/%ff", "", nil, rpcerr.ReasonInvalidParameters, 400, "Invalid parameters"},
		{"GET", "/v1/users?limit=abc", "", nil, rpcerr.ReasonInvalidParameters, 400, "Invalid parameters"},
		{"GET", "/v1/events?limit=1", "", nil, "", 404, "Not found"},
		{"GET", "/v1/users/" + id, "", []string{"Usersd-Rejected", rpcerr.ReasonPayloadTooLarge}, "", 404, "Not found"},
		{"POST", "/v1/users", `{}`, []string{"Content-Type", "text/plain"}, rpcerr.ReasonUnsupportedMediaType, 415, "Content-Type must be application/json"},
		{"PUT", "/v1/users/" + id, `{"claims":{"k":"` + strings.Repeat("x", 64) + `"}}`, nil, rpcerr.ReasonPayloadTooLarge, 413, "The request body must be at most 64 bytes"},
		{"POST", "/v1/users", `{} {}`, nil, rpcerr.ReasonMalformedBody, 400, "Malformed JSON body"},
		{"PUT", "/v1/users/" + id, `{"nope":1}`, nil, rpcerr.ReasonInvalidBody, 400, "Validation failed"},
		{"DELETE", "/v1/users/" + id, "", nil, "", 404, "Not found"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			if tc.header != nil {
				r.Header.Set(tc.header[0], tc.header[1])
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var mark []string
			select {
			case mark = <-marks:
			default:
				t.Fatal("the request did not reach the server")
			}
			if want := []string{tc.reason}; tc.reason == "" && len(mark) != 0 || tc.reason != "" && !slices.Equal(mark, want) {
				t.Errorf("the call carried %q, want %q", mark, tc.reason)
			}
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || body.Message != tc.message {
				t.Errorf("got %d %q, want %d %q", rec.Code, body.Message, tc.status, tc.message)
			}
		})
	}
}

// failingBody is a request body whose client vanished mid-way.
type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// A body that cannot be read at all is answered 400 by the gateway itself:
// the client is gone, so there is nobody to authenticate and no call is
// made.
func TestUnreadableBodyIsAnsweredWithoutACall(t *testing.T) {
	calls := make(chan struct{}, 1)
	counting := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		calls <- struct{}{}
		return handler(ctx, req)
	}
	h, err := New(t.Context(), inProcessConn(usersv1.UnimplementedUserServiceServer{}, counting), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 10, MaxJSONDepth: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/users", io.NopCloser(failingBody{}))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusBadRequest || body.Code != "BadRequest" ||
		body.Message != "The request body could not be read" {
		t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
	}
	select {
	case <-calls:
		t.Fatal("a request whose body could not be read reached the server")
	default:
	}
}
