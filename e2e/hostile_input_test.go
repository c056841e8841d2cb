package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// sendRaw writes a request as given, byte for byte, for request targets
// net/http's client would refuse or re-encode.
func (s *server) sendRaw(t *testing.T, raw string) response {
	t.Helper()
	conn, err := net.Dial("tcp", s.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait(30 * time.Second)))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Invalid UTF-8 in a path or query parameter is a 400 naming the
// parameter, after authentication (401) and authorization (403), never a
// 500.
func TestRESTParamsNotUTF8(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	issuer := tokenFor(t, auth.TokenSpec{Subject: "e2e-issuer", Roles: []string{auth.RoleIssuer}})
	auditor := tokenFor(t, auth.TokenSpec{Subject: "e2e-auditor", Roles: []string{auth.RoleAuditor}})
	for _, tc := range []struct {
		method, path, body string
		param, location    string
		unprivileged       string // a valid token without the role
	}{
		{"GET", "/v1/users/%ff", "", "id", "params", auditor},
		{"GET", "/v1/users/%C0%AF", "", "id", "params", auditor},
		{"PUT", "/v1/users/%ff", `{"claims":{}}`, "id", "params", auditor},
		{"DELETE", "/v1/users/a%ffb", "", "id", "params", auditor},
		{"GET", "/v1/users?cursor=%ff", "", "cursor", "query", auditor},
		{"GET", "/v1/users?cursor=%C0%AF&limit=5", "", "cursor", "query", auditor},
		{"GET", "/v1/users?limit=%ff", "", "limit", "query", auditor},
		{"GET", "/v1/users?limit=%zz", "", "limit", "query", auditor},
		{"GET", "/v1/events?cursor=%ff", "", "cursor", "query", issuer},
		{"GET", "/v1/events?limit=%ff", "", "limit", "query", issuer},
		{"GET", "/v1/events?ids=%ff", "", "ids", "query", issuer},
		{"GET", "/v1/events?requestIds=%ff", "", "requestIds", "query", issuer},
		{"GET", "/v1/events?request_ids=%C0%AF", "", "requestIds", "query", issuer},
		{"GET", "/v1/events?types=%ff", "", "types", "query", issuer},
		{"GET", "/v1/events?categories=%ff", "", "categories", "query", issuer},
		{"GET", "/v1/events?dateFrom=%ff", "", "dateFrom", "query", issuer},
		{"GET", "/v1/events?dateTo=2026-01-01T00:00:00Z%ff", "", "dateTo", "query", issuer},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			wantError(t, s.do(t, tc.method, tc.path, tc.body, "Authorization", ""), 401, "Unauthorized")
			wantError(t, s.do(t, tc.method, tc.path, tc.body, "Authorization", "Bearer "+tc.unprivileged), 403, "Forbidden")
			e := wantError(t, s.do(t, tc.method, tc.path, tc.body), 400, "BadRequest", tc.param+"@"+tc.location)
			if v := e.Details[0].Value; v == "" || !strings.Contains(strings.ToLower(tc.path), strings.ToLower(v)) {
				t.Errorf("detail value %q does not quote the input", v)
			}
		})
	}
	t.Run("raw non-UTF-8 bytes in the request target", func(t *testing.T) {
		for _, target := range []string{"/v1/users/\xff", "/v1/users?cursor=\xc0\xaf"} {
			raw := "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			wantError(t, s.sendRaw(t, raw+"\r\n"), 401, "Unauthorized")
			wantError(t, s.sendRaw(t, raw+"Authorization: Bearer "+adminToken+"\r\n\r\n"), 400, "BadRequest")
		}
	})
	t.Run("unknown parameters are ignored, whatever they hold", func(t *testing.T) {
		for _, path := range []string{
			"/v1/users?x=%ff", "/v1/users?x=%zz", "/v1/users?%ff=1", "/v1/users?%zz=1&limit=1",
			"/v1/users?limit[x]=1", "/v1/users?cursor.x=%ff", "/v1/events?nope=%C0%AF",
		} {
			if r := s.do(t, "GET", path, ""); r.Status != 200 {
				t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
	})
	t.Run("a field given by both of its names is given twice", func(t *testing.T) {
		wantError(t, s.do(t, "GET", "/v1/events?requestIds=a&request_ids=b", "", "Authorization", ""), 401, "Unauthorized")
		wantError(t, s.do(t, "GET", "/v1/events?requestIds=a&request_ids=b", ""), 400, "BadRequest", "requestIds@query")
	})
	t.Run("a form POST is not served as the GET of its path", func(t *testing.T) {
		r := s.do(t, "POST", "/v1/events", "types=%ff", "Content-Type", "application/x-www-form-urlencoded")
		wantError(t, r, 405, "MethodNotAllowed")
	})
}

// Headers that steer the gateway's own gRPC call are not REST API.
func TestRESTGatewayHeadersIgnored(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	if r := s.do(t, "GET", "/v1/users", "", "Grpc-Timeout", "1n"); r.Status != 200 {
		t.Fatalf("Grpc-Timeout 1n: %d %s", r.Status, r.Body)
	}
	if r := s.do(t, "POST", "/v1/users", "{}", "Grpc-Timeout", "garbage"); r.Status != 201 {
		t.Fatalf("Grpc-Timeout garbage: %d %s", r.Status, r.Body)
	}
	r := s.do(t, "GET", "/v1/users", "", "Authorization", "", "Grpc-Metadata-Authorization", "Bearer "+adminToken)
	wantError(t, r, 401, "Unauthorized")
	if r := s.do(t, "GET", "/v1/users", "", "Grpc-Metadata-Authorization", "Bearer nope"); r.Status != 200 {
		t.Fatalf("Grpc-Metadata-Authorization beside a valid token: %d %s", r.Status, r.Body)
	}
	r = s.do(t, "GET", "/v1/users", "", "Grpc-Metadata-X-Request-Id", "smuggled-id", "Grpc-Metadata-Usersd-Rejected", "400 x")
	if r.Status != 200 || r.Header.Get("X-Request-Id") == "smuggled-id" {
		t.Fatalf("%d, X-Request-Id %q", r.Status, r.Header.Get("X-Request-Id"))
	}
	events := s.do(t, "GET", "/v1/events?requestIds=smuggled-id", "")
	if events.Status != 200 || !bytes.Contains(events.Body, []byte(`"data":[]`)) {
		t.Fatalf("events under the smuggled request id: %d %s", events.Status, events.Body)
	}
}

// The ±2^53 limit holds in every spelling of a number, and numbers within
// it are stored as sent.
func TestRESTNumbersBeyond2To53(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	for _, n := range []string{
		"9007199254740993", "9007199254740993.0", "9007199254740993e0", "9.007199254740993e15",
		"-9007199254740993.0", "90071992547409930e-1", "1e400", "1.5e300",
	} {
		r := s.do(t, "POST", "/v1/users", `{"claims":{"n":`+n+`}}`)
		if e := wantError(t, r, 400, "BadRequest", "claims.n@body"); e.Details[0].Value != n {
			t.Errorf("%s: detail value %q", n, e.Details[0].Value)
		}
	}
	created := s.do(t, "POST", "/v1/users", `{"claims":{"a":0.1,"b":1.5e-7,"c":9007199254740992,"d":-9007199254740992.0}}`)
	if created.Status != 201 {
		t.Fatalf("%d %s", created.Status, created.Body)
	}
	var u struct {
		Claims map[string]json.Number `json:"claims"`
	}
	dec := json.NewDecoder(bytes.NewReader(created.Body))
	dec.UseNumber()
	if err := dec.Decode(&u); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"a": 0.1, "b": 1.5e-7, "c": 1 << 53, "d": -(1 << 53)} {
		if got, err := u.Claims[k].Float64(); err != nil || got != want {
			t.Errorf("claims.%s = %s, want %v", k, u.Claims[k], want)
		}
	}
	if got := u.Claims["c"].String(); got != "9007199254740992" {
		t.Errorf("claims.c printed as %s", got)
	}
}

// Validation errors list the first 50 offending inputs on both transports.
func TestValidationErrorsListAtMost50(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	claims := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := range 150_000 {
		claims.Fields[strconv.FormatInt(int64(i), 36)] = structpb.NewNumberValue(1e300)
	}
	_, err := s.grpc().CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("err %v", err)
	}
	var violations []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			violations = append(violations, br.GetFieldViolations()...)
		}
	}
	if len(violations) != 50 || !strings.HasPrefix(violations[0].GetField(), "user.claims.") {
		t.Fatalf("%d field violations over gRPC", len(violations))
	}

	var body strings.Builder
	body.WriteString(`{"claims":{`)
	for i := range 3000 {
		fmt.Fprintf(&body, `"k%d":1e400,`, i)
	}
	body.WriteString(`"last":1}}`)
	e := wantError(t, s.do(t, "POST", "/v1/users", body.String()), 400, "BadRequest")
	if len(e.Details) != 50 || e.Details[0].Param != "claims.k0" {
		t.Fatalf("%d details over REST, first %+v", len(e.Details), e.Details[0])
	}
}
