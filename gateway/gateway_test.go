package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usersd/usersd/gateway/jsonbody"
	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

var testRoutes = routesOf(usersv1.File_users_v1_users_proto.Services().ByName("UserService"))

// Every RPC of the service must have a REST binding: the gateway's route
// table, 405 Allow lists and detail locations all come from it.
func TestEveryRPCHasARoute(t *testing.T) {
	methods := usersv1.File_users_v1_users_proto.Services().ByName("UserService").Methods()
	if len(testRoutes) != methods.Len() {
		t.Fatalf("%d routes for %d RPCs", len(testRoutes), methods.Len())
	}
}

func TestRoutesFindAndAllow(t *testing.T) {
	for _, tc := range []struct {
		method, path, rpc string
		allow             string
	}{
		{"GET", "/v1/users", "ListUsers", "POST, GET"},
		{"POST", "/v1/users", "CreateUser", "POST, GET"},
		{"GET", "/v1/users/abc", "GetUser", "GET, PUT, DELETE"},
		{"PUT", "/v1/users/abc", "UpdateUser", "GET, PUT, DELETE"},
		{"DELETE", "/v1/users/", "DeleteUser", "GET, PUT, DELETE"},
		{"PATCH", "/v1/users/abc", "", "GET, PUT, DELETE"},
		{"GET", "/v1/users/abc/def", "", ""},
		{"GET", "/v2/users", "", ""},
	} {
		rt, _ := testRoutes.find(tc.method, tc.path)
		got := ""
		if rt != nil {
			got = string(rt.rpc.Name())
		}
		if got != tc.rpc {
			t.Errorf("find(%s %s) = %q, want %q", tc.method, tc.path, got, tc.rpc)
		}
		if allow := strings.Join(testRoutes.allowed(tc.path), ", "); allow != tc.allow {
			t.Errorf("allowed(%s) = %q, want %q", tc.path, allow, tc.allow)
		}
	}
}

func TestLocate(t *testing.T) {
	get, _ := testRoutes.find("GET", "/v1/users/x")
	put, _ := testRoutes.find("PUT", "/v1/users/x")
	list, _ := testRoutes.find("GET", "/v1/users")
	for _, tc := range []struct {
		rt                     *route
		field, param, location string
	}{
		{get, "id", "id", locParams},
		{put, "id", "id", locParams},
		{put, "user.id", "id", locBody},
		{put, "user.authentication_provider.subject_id", "authenticationProvider.subjectId", locBody},
		{put, "user.claims.first_name.sub_key", "claims.first_name.sub_key", locBody},
		{put, "user.claims.tags[2]", "claims.tags[2]", locBody},
		{put, "update_mask", "updateMask", locQuery},
		{list, "limit", "limit", locQuery},
		{list, "cursor", "cursor", locQuery},
	} {
		d := tc.rt.locate(tc.field, "msg")
		if d.Param != tc.param || d.Location != tc.location {
			t.Errorf("locate(%s) = %s@%s, want %s@%s", tc.field, d.Param, d.Location, tc.param, tc.location)
		}
	}
}

func TestLookupJSON(t *testing.T) {
	doc := []byte(`{"a":{"b":"text","n":12345678901234567890,"tags":[1,{"k":[true]}]},"s":"x"}`)
	for param, want := range map[string]string{
		"s":              "x",
		"a.b":            "text",
		"a.n":            "12345678901234567890",
		"a.tags[1].k[0]": "true",
		"a.tags[1]":      `{"k":[true]}`,
		"a.tags[9]":      "",
		"missing":        "",
		"s.deeper":       "",
	} {
		if got := lookupJSON(doc, param); got != want {
			t.Errorf("lookupJSON(%s) = %q, want %q", param, got, want)
		}
	}
	if got := lookupJSON([]byte(`not json`), "a"); got != "" {
		t.Errorf("lookupJSON on garbage = %q", got)
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", 200) // 400 bytes
	got := truncate(s, 255)
	if len(got) != 254 || !strings.HasPrefix(s, got) {
		t.Fatalf("truncate gave %d bytes", len(got))
	}
	if truncate("short", 256) != "short" {
		t.Fatal("short string changed")
	}
}

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		status     int
		code       string
		header     string
		headerWant string
	}{
		{400, "BadRequest", "", ""},
		{401, "Unauthorized", "WWW-Authenticate", `Bearer realm="usersd"`},
		{405, "MethodNotAllowed", "", ""},
		{413, "PayloadTooLarge", "", ""},
		{415, "UnsupportedMediaType", "", ""},
		{429, "TooManyRequests", "Retry-After", "1"},
		{503, "ServiceUnavailable", "Retry-After", "1"},
		{500, "InternalServerError", "", ""},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, tc.status, "", []detail{{Value: strings.Repeat("v", 300), Msg: "m", Param: "p", Location: locBody}})
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.status || body.Code != tc.code || body.Message != http.StatusText(tc.status) {
			t.Errorf("%d: got %d %+v", tc.status, rec.Code, body)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%d: Content-Type %q", tc.status, rec.Header().Get("Content-Type"))
		}
		if tc.header != "" && rec.Header().Get(tc.header) != tc.headerWant {
			t.Errorf("%d: %s %q", tc.status, tc.header, rec.Header().Get(tc.header))
		}
		if len(body.Details[0].Value) != maxDetailValueBytes {
			t.Errorf("%d: detail value of %d bytes", tc.status, len(body.Details[0].Value))
		}
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"APPLICATION/JSON":                true,
		"application/json;;":              false,
		"text/json":                       false,
		"application/jsonx":               false,
		"application/merge-patch+json":    false,
		"":                                false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v", ct, got)
		}
	}
}

// Every request body the API binds is made only of the field kinds the
// strict checker knows: a field of another kind would be refused in every
// request until gateway/jsonbody learns its JSON form.
func TestEveryBodyIsCheckable(t *testing.T) {
	bodies := 0
	for _, rt := range testRoutes {
		md := rt.bodyMessage()
		if md == nil {
			continue
		}
		bodies++
		for _, fd := range jsonbody.Unhandled(md) {
			t.Errorf("%s: body field %s (%s) is of a kind gateway/jsonbody does not check", rt.rpc.Name(), fd.FullName(), fd.Kind())
		}
	}
	if bodies == 0 {
		t.Fatal("no route binds a body: the test checks nothing")
	}
}
