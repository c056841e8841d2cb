package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"

	"github.com/usersd/usersd/gateway/jsonbody"
	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

var testRoutes = routesOf(usersv1.File_users_v1_users_proto.Services().ByName("UserService"))

// testRoute is the route of an RPC, by its short name.
func testRoute(t *testing.T, rpc string) *route {
	t.Helper()
	for _, rt := range testRoutes {
		if string(rt.rpc.Name()) == rpc {
			return rt
		}
	}
	t.Fatalf("no route for %s", rpc)
	return nil
}

// Every RPC of the service has a REST binding (the gateway's checks, 405
// Allow lists and detail locations all come from it), and the guard finds
// it from the pattern the generated mux matched, by HTTP method and path,
// and the error handler by the RPC's full name.
func TestEveryRPCHasARoute(t *testing.T) {
	methods := usersv1.File_users_v1_users_proto.Services().ByName("UserService").Methods()
	if len(testRoutes) != methods.Len() {
		t.Fatalf("%d routes for %d RPCs", len(testRoutes), methods.Len())
	}
	var matched *route
	mux := runtime.NewServeMux(runtime.WithMiddlewares(func(runtime.HandlerFunc) runtime.HandlerFunc {
		return func(_ http.ResponseWriter, r *http.Request, _ map[string]string) {
			pattern, _ := runtime.HTTPPattern(r.Context())
			matched = testRoutes.matched(r.Method, pattern)
		}
	}))
	if err := usersv1.RegisterUserServiceHandlerClient(t.Context(), mux, nil); err != nil {
		t.Fatal(err)
	}
	byRPC := testRoutes.byRPC()
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		rt := testRoute(t, string(m.Name()))
		matched = nil
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(rt.method, strings.ReplaceAll(rt.template, "{id}", "x"), nil))
		if matched != rt {
			t.Errorf("%s %s: the guard finds %v, want the route of %s", rt.method, rt.template, matched, m.Name())
		}
		if fullMethod := "/" + string(m.Parent().FullName()) + "/" + string(m.Name()); byRPC[fullMethod] != rt {
			t.Errorf("%s: no route by its full name", fullMethod)
		}
	}
}

func TestRoutesAllow(t *testing.T) {
	for _, tc := range []struct {
		path, template, allow string
	}{
		{"/v1/users", "/v1/users", "POST, GET"},
		{"/v1/users/abc", "/v1/users/{id}", "GET, PUT, DELETE"},
		{"/v1/users/", "/v1/users/{id}", "GET, PUT, DELETE"},
		// A literal path is served by its own route only, not also as an id.
		{"/v1/users/search", "/v1/users/search", "POST"},
		{"/v1/users/searc", "/v1/users/{id}", "GET, PUT, DELETE"},
		{"/v1/events", "/v1/events", "GET"},
		{"/v1/users/abc/def", "", ""},
		{"/v2/users", "", ""},
	} {
		if allow := strings.Join(testRoutes.allowed(tc.path), ", "); allow != tc.allow {
			t.Errorf("allowed(%s) = %q, want %q", tc.path, allow, tc.allow)
		}
		if got := testRoutes.template(tc.path); got != tc.template {
			t.Errorf("template(%s) = %q, want %q", tc.path, got, tc.template)
		}
	}
}

func TestLocate(t *testing.T) {
	get, put, list := testRoute(t, "GetUser"), testRoute(t, "UpdateUser"), testRoute(t, "ListUsers")
	search := testRoute(t, "SearchUsers")
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
		{put, "if-match", "If-Match", locHeaders},
		{testRoute(t, "DeleteUser"), "if-match", "If-Match", locHeaders},
		{search, "claims.a.b", "claims.a.b", locBody},
		{search, "authentication_provider.provider_id", "authenticationProvider.providerId", locBody},
		{search, "limit", "limit", locBody},
		{search, "cursor", "cursor", locBody},
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
		if got := lookupJSON(decodeJSON(doc), param); got != want {
			t.Errorf("lookupJSON(%s) = %q, want %q", param, got, want)
		}
	}
	if got := lookupJSON(decodeJSON([]byte(`not json`)), "a"); got != "" {
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
		if rt.bodyType == nil {
			continue
		}
		md := rt.bodyType.Descriptor()
		bodies++
		for _, fd := range jsonbody.Unhandled(md) {
			t.Errorf("%s: body field %s (%s) is of a kind gateway/jsonbody does not check", rt.rpc.Name(), fd.FullName(), fd.Kind())
		}
	}
	if bodies == 0 {
		t.Fatal("no route binds a body: the test checks nothing")
	}
}

// A checked body decodes exactly as the default decoder would decode it,
// into a message or a message field, the field allocated even for an
// empty body (io.EOF).
func TestCheckedDecoderAgreesWithTheDefault(t *testing.T) {
	m := compactJSON{&runtime.JSONPb{}}
	// checked is the body as the guard hands it on, decoded into msg, or
	// nil when the guard refuses it.
	checked := func(body string, msg proto.Message) *checkedBody {
		if vs := jsonbody.Decode([]byte(body), msg.ProtoReflect(), jsonbody.Limits{}).Violations; len(vs) > 0 {
			return nil
		}
		return newCheckedBody([]byte(body), msg)
	}
	for _, body := range []string{"", " \r\n\t", `{}`, `{"id":"x","claims":{"a":[1,"b",null]}}`, ` {"authenticationProvider":null} `} {
		var want, got *usersv1.User
		wantErr := m.JSONPb.NewDecoder(strings.NewReader(body)).Decode(&want)
		cb := checked(body, &usersv1.User{})
		if cb == nil {
			t.Fatalf("%q: refused as a User", body)
		}
		gotErr := m.NewDecoder(cb).Decode(&got)
		if (wantErr == nil) != (gotErr == nil) || errors.Is(wantErr, io.EOF) != errors.Is(gotErr, io.EOF) {
			t.Fatalf("%q: err %v, want %v", body, gotErr, wantErr)
		}
		if (got == nil) != (want == nil) || !proto.Equal(got, want) {
			t.Fatalf("%q: decoded %v, want %v", body, got, want)
		}
		var wantReq, gotReq usersv1.UpdateUserRequest
		wantErr = m.JSONPb.NewDecoder(strings.NewReader(body)).Decode(&wantReq)
		if cb = checked(body, &usersv1.UpdateUserRequest{}); cb == nil {
			if wantErr == nil {
				t.Fatalf("%q: refused as a whole request, which the default decoder reads", body)
			}
			continue // the guard refuses it: no decoder sees it
		}
		gotErr = m.NewDecoder(cb).Decode(&gotReq)
		if (wantErr == nil) != (gotErr == nil) || !proto.Equal(&gotReq, &wantReq) {
			t.Fatalf("%q as a whole request: %v %v, want %v %v", body, &gotReq, gotErr, &wantReq, wantErr)
		}
	}
}

// A decoded body handed to a field of another message type is an error,
// not a panic in reflection: the field keeps its value.
func TestCheckedDecoderRefusesAnotherType(t *testing.T) {
	body := newCheckedBody([]byte(`{"claims":{}}`), &usersv1.User{})
	var field *usersv1.AuthenticationProvider
	err := compactJSON{&runtime.JSONPb{}}.NewDecoder(body).Decode(&field)
	if err == nil || !strings.Contains(err.Error(), "User") || field != nil {
		t.Fatalf("Decode into *AuthenticationProvider: %v, field %v; want an error naming the decoded type", err, field)
	}
}
