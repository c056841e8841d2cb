package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
)

// versionedUsers answers as the service does about versions: every user
// response sends its entity tag as etag header metadata (next to metadata
// REST clients must not see), and UpdateUser and DeleteUser report the
// if-match they got, accept version 7 or "*", refuse a malformed one and
// fail any other as a mismatch.
type versionedUsers struct {
	usersv1.UnimplementedUserServiceServer
	ifMatch chan []string
}

const versionedID = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"

func sendTag(ctx context.Context, tag string) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("etag", tag, "x-internal", "secret"))
}

// condition is what the service makes of if-match: nil when it holds.
func (u versionedUsers) condition(ctx context.Context) error {
	got := metadata.ValueFromIncomingContext(ctx, "if-match")
	u.ifMatch <- got
	switch {
	case len(got) == 0 || got[0] == "*" || got[0] == `"7"`:
		return nil
	case got[0] == "bad":
		return rpcerr.New(codes.InvalidArgument, "Validation failed", "INVALID_ARGUMENT", &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "if-match", Description: "must be * or one entity tag"}},
		})
	}
	return rpcerr.New(codes.FailedPrecondition, "The user's version does not match If-Match", "ETAG_MISMATCH")
}

func (versionedUsers) CreateUser(ctx context.Context, _ *usersv1.CreateUserRequest) (*usersv1.CreateUserResponse, error) {
	sendTag(ctx, `"1"`)
	return &usersv1.CreateUserResponse{User: &usersv1.User{Id: versionedID}}, nil
}

func (versionedUsers) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	sendTag(ctx, `"7"`)
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: req.GetId()}}, nil
}

func (u versionedUsers) UpdateUser(ctx context.Context, req *usersv1.UpdateUserRequest) (*usersv1.UpdateUserResponse, error) {
	if err := u.condition(ctx); err != nil {
		return nil, err
	}
	sendTag(ctx, `"8"`)
	return &usersv1.UpdateUserResponse{User: &usersv1.User{Id: req.GetId()}}, nil
}

func (u versionedUsers) DeleteUser(ctx context.Context, _ *usersv1.DeleteUserRequest) (*usersv1.DeleteUserResponse, error) {
	if err := u.condition(ctx); err != nil {
		return nil, err
	}
	return &usersv1.DeleteUserResponse{}, nil
}

// The gateway turns the service's etag metadata into ETag (and nothing
// else into a header), passes If-Match on as if-match (and not a
// Grpc-Metadata-If-Match), names a bad If-Match as a header in the error's
// details, and answers a GET whose If-None-Match matches with 304 and no
// body, after the call.
func TestConditionalRequests(t *testing.T) {
	users := versionedUsers{ifMatch: make(chan []string, 1)}
	h, err := New(t.Context(), inProcessConn(users), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 16, MaxJSONDepth: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A real server: net/http, unlike a recorder, sends no body with a 204
	// or 304, whatever the handler writes.
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	path := "/v1/users/" + versionedID
	for _, tc := range []struct {
		name         string
		method, path string
		header       http.Header
		status       int
		etag         string   // "" for none
		ifMatch      []string // what the service got, for PUT and DELETE
		body         bool     // a body is expected
		code         string   // the error body's code, if any
	}{
		{"case=create has the new user's tag", "POST", "/v1/users", nil, 201, `"1"`, nil, true, ""},
		{"case=get has the tag", "GET", path, nil, 200, `"7"`, nil, true, ""},
		{"case=get, If-None-Match the tag", "GET", path, http.Header{"If-None-Match": {`"7"`}}, 304, `"7"`, nil, false, ""},
		{"case=get, If-None-Match weak", "GET", path, http.Header{"If-None-Match": {`W/"7"`}}, 304, `"7"`, nil, false, ""},
		{"case=get, If-None-Match a list", "GET", path, http.Header{"If-None-Match": {`"5", W/"6", "7"`}}, 304, `"7"`, nil, false, ""},
		{"case=get, If-None-Match on two lines", "GET", path, http.Header{"If-None-Match": {`"6"`, `"7"`}}, 304, `"7"`, nil, false, ""},
		{"case=get, If-None-Match star", "GET", path, http.Header{"If-None-Match": {"*"}}, 304, `"7"`, nil, false, ""},
		{"case=get, If-None-Match another tag", "GET", path, http.Header{"If-None-Match": {`"6"`}}, 200, `"7"`, nil, true, ""},
		{"case=get, If-None-Match malformed", "GET", path, http.Header{"If-None-Match": {`7`}}, 200, `"7"`, nil, true, ""},
		{"case=put, no If-Match", "PUT", path, nil, 200, `"8"`, nil, true, ""},
		{"case=put, If-Match the tag", "PUT", path, http.Header{"If-Match": {`"7"`}}, 200, `"8"`, []string{`"7"`}, true, ""},
		{"case=put, If-Match star", "PUT", path, http.Header{"If-Match": {"*"}}, 200, `"8"`, []string{"*"}, true, ""},
		{"case=put, If-Match stale", "PUT", path, http.Header{"If-Match": {`"6"`}}, 412, "", []string{`"6"`}, true, "PreconditionFailed"},
		{"case=put, If-Match malformed", "PUT", path, http.Header{"If-Match": {"bad"}}, 400, "", []string{"bad"}, true, "BadRequest"},
		{"case=put, If-None-Match is for GET only", "PUT", path, http.Header{"If-None-Match": {`"7"`}}, 200, `"8"`, nil, true, ""},
		{"case=put, Grpc-Metadata-If-Match ignored", "PUT", path, http.Header{"Grpc-Metadata-If-Match": {`"6"`}}, 200, `"8"`, nil, true, ""},
		{"case=delete, If-Match the tag", "DELETE", path, http.Header{"If-Match": {`"7"`}}, 204, "", []string{`"7"`}, false, ""},
		{"case=delete, If-Match stale", "DELETE", path, http.Header{"If-Match": {`"6"`}}, 412, "", []string{`"6"`}, true, "PreconditionFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body string
			if tc.method == "POST" || tc.method == "PUT" {
				body = `{}`
			}
			r, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			for k, vs := range tc.header {
				r.Header[k] = vs
			}
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			var ifMatch []string
			if tc.method == "PUT" || tc.method == "DELETE" {
				// The call ran in process before the response: what the
				// service got is there, or it was never called.
				select {
				case ifMatch = <-users.ifMatch:
				default:
					t.Fatal("the service was not called")
				}
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, got)
			}
			if tags := resp.Header.Values("ETag"); tc.etag == "" && len(tags) != 0 || tc.etag != "" && !slices.Equal(tags, []string{tc.etag}) {
				t.Errorf("ETag %q, want %q", tags, tc.etag)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "grpc-") {
					t.Errorf("response header %s: %q", k, resp.Header[k])
				}
			}
			if !slices.Equal(ifMatch, tc.ifMatch) {
				t.Errorf("the service got if-match %q, want %q", ifMatch, tc.ifMatch)
			}
			if (len(got) > 0) != tc.body {
				t.Errorf("body %q, want one: %v", got, tc.body)
			}
			if !tc.body && resp.Header.Get("Content-Type") != "" {
				t.Errorf("Content-Type %q without a body", resp.Header.Get("Content-Type"))
			}
			if tc.code == "" {
				return
			}
			var e errorBody
			if err := json.Unmarshal(got, &e); err != nil || e.Code != tc.code {
				t.Fatalf("error body %s (%v), want code %s", got, err, tc.code)
			}
			if tc.code == "BadRequest" {
				want := []detail{{Value: "bad", Msg: "must be * or one entity tag", Param: "If-Match", Location: "headers"}}
				if !slices.Equal(e.Details, want) {
					t.Errorf("details %+v, want %+v", e.Details, want)
				}
			}
		})
	}
}
