package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/auth"
)

// openAPIOperation is what the test reads of one documented operation.
type openAPIOperation struct {
	Parameters []struct{ Name, In string }
	Responses  map[string]struct {
		Schema *struct {
			Ref string `json:"$ref"`
		}
		Headers map[string]any
	}
}

// servedOpenAPI fetches /openapi.json (no token needed) and returns its
// operations by "METHOD /path/{template}".
func servedOpenAPI(t *testing.T, s *server) map[string]openAPIOperation {
	t.Helper()
	r := s.do(t, "GET", "/openapi.json", "", "Authorization", "")
	var doc struct {
		Paths map[string]map[string]openAPIOperation
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &doc) != nil {
		t.Fatalf("openapi.json: %d %.200s", r.Status, r.Body)
	}
	ops := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

// contractCodes are the error codes of contract §3 by status.
var contractCodes = map[int]string{
	400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
	405: "MethodNotAllowed", 409: "Conflict", 412: "PreconditionFailed", 413: "PayloadTooLarge",
	415: "UnsupportedMediaType", 429: "TooManyRequests", 503: "ServiceUnavailable",
}

// unprovokable are documented statuses no request can bring about.
var unprovokable = map[int]string{
	500: "only a fault inside the server answers it",
}

// The OpenAPI document the binary serves lists every status each operation
// answers: each documented status is provoked here, and answered as
// documented (error body, headers); every status the test can provoke is
// documented; the methods and query parameters it lists are the ones the
// server serves and reads.
func TestOpenAPIMatchesServer(t *testing.T) {
	t.Parallel()
	// Every caller below is a fresh subject, so the rate limit only ever
	// stops the one caller that spends its burst on purpose.
	s := start(t, "", "--rate-limit", "0.001", "--rate-limit-burst", "3")
	late := start(t, "", "--request-timeout", "1ns") // every call runs out of time
	doc := servedOpenAPI(t, s)

	tokenAs := func(role string) string {
		return tokenFor(t, auth.TokenSpec{Subject: "openapi-" + randomHex(6), Roles: []string{role}})
	}
	// send makes one request as a fresh caller with role ("" sends no
	// token); headers are extra name, value pairs for server.do.
	send := func(srv *server, role, method, path, body string, headers ...string) response {
		authz := ""
		if role != "" {
			authz = "Bearer " + tokenAs(role)
		}
		return srv.do(t, method, path, body, append([]string{"Authorization", authz}, headers...)...)
	}
	limited := tokenAs(auth.RoleAdmin)
	for range 3 {
		s.do(t, "GET", "/v1/users?limit=1", "", "Authorization", "Bearer "+limited) // spends the burst
	}

	create := func(body string) string {
		r := send(s, auth.RoleAdmin, "POST", "/v1/users", body)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		return r.JSON(t)["id"].(string)
	}
	existing := create(`{}`)
	takenLink := `{"authenticationProvider":` + provider("openapi-taken") + `}`
	create(takenLink)
	tooLarge := `{"claims":{"k":"` + strings.Repeat("x", 70_000) + `"}}`

	// call is a request an operation serves; the statuses every operation
	// answers (401, 403, 429, 503) are provoked by sending it.
	type call struct{ method, path, body string }
	type operation struct {
		call
		forbidden string // a role that may not call it
		statuses  map[int]func() response
	}
	admin := auth.RoleAdmin
	ops := map[string]operation{
		"POST /v1/users": {call{"POST", "/v1/users", `{}`}, auth.RoleAuditor, map[int]func() response{
			201: func() response { return send(s, admin, "POST", "/v1/users", "") }, // no body at all
			400: func() response { return send(s, admin, "POST", "/v1/users", `{"id":"`+missingID+`"}`) },
			409: func() response { return send(s, admin, "POST", "/v1/users", takenLink) },
			413: func() response { return send(s, admin, "POST", "/v1/users", tooLarge) },
			415: func() response { return send(s, admin, "POST", "/v1/users", `{}`, "Content-Type", "text/plain") },
		}},
		"GET /v1/users/{id}": {call{"GET", "/v1/users/" + existing, ""}, auth.RoleAuditor, map[int]func() response{
			200: func() response { return send(s, admin, "GET", "/v1/users/"+existing, "") },
			304: func() response { return send(s, admin, "GET", "/v1/users/"+existing, "", "If-None-Match", "*") },
			400: func() response { return send(s, admin, "GET", "/v1/users/not-a-uuid", "") },
			404: func() response { return send(s, admin, "GET", "/v1/users/"+missingID, "") },
		}},
		"PUT /v1/users/{id}": {call{"PUT", "/v1/users/" + existing, `{}`}, auth.RoleAuditor, map[int]func() response{
			200: func() response { return send(s, admin, "PUT", "/v1/users/"+existing, "") }, // no body at all
			400: func() response { return send(s, admin, "PUT", "/v1/users/"+existing, `{"id":"`+missingID+`"}`) },
			404: func() response { return send(s, admin, "PUT", "/v1/users/"+missingID, `{}`) },
			409: func() response { return send(s, admin, "PUT", "/v1/users/"+existing, takenLink) },
			412: func() response { return send(s, admin, "PUT", "/v1/users/"+existing, `{}`, "If-Match", `W/"1"`) },
			413: func() response { return send(s, admin, "PUT", "/v1/users/"+existing, tooLarge) },
			415: func() response {
				return send(s, admin, "PUT", "/v1/users/"+existing, `{}`, "Content-Type", "application/x-www-form-urlencoded")
			},
		}},
		"DELETE /v1/users/{id}": {call{"DELETE", "/v1/users/" + existing, ""}, auth.RoleAuditor, map[int]func() response{
			204: func() response {
				return send(s, admin, "DELETE", "/v1/users/"+create(`{}`), "")
			},
			400: func() response { return send(s, admin, "DELETE", "/v1/users/not-a-uuid", "") },
			404: func() response { return send(s, admin, "DELETE", "/v1/users/"+missingID, "") },
			412: func() response { return send(s, admin, "DELETE", "/v1/users/"+existing, "", "If-Match", `W/"1"`) },
		}},
		"GET /v1/users": {call{"GET", "/v1/users", ""}, auth.RoleAuditor, map[int]func() response{
			200: func() response { return send(s, admin, "GET", "/v1/users", "") },
			400: func() response { return send(s, admin, "GET", "/v1/users?limit=0", "") },
		}},
		"POST /v1/users/search": {call{"POST", "/v1/users/search", `{}`}, auth.RoleAuditor, map[int]func() response{
			200: func() response { return send(s, admin, "POST", "/v1/users/search", "") }, // no body at all
			400: func() response { return send(s, admin, "POST", "/v1/users/search", `{"limit":0}`) },
			413: func() response { return send(s, admin, "POST", "/v1/users/search", tooLarge) },
			415: func() response { return send(s, admin, "POST", "/v1/users/search", `{}`, "Content-Type", "text/plain") },
		}},
		"GET /v1/events": {call{"GET", "/v1/events", ""}, auth.RoleIssuer, map[int]func() response{
			200: func() response { return send(s, auth.RoleAuditor, "GET", "/v1/events", "") },
			400: func() response { return send(s, admin, "GET", "/v1/events?limit=0", "") },
		}},
	}
	for _, op := range ops {
		c := op.call
		op.statuses[401] = func() response { return send(s, "", c.method, c.path, c.body) }
		op.statuses[403] = func() response { return send(s, op.forbidden, c.method, c.path, c.body) }
		op.statuses[429] = func() response { return s.do(t, c.method, c.path, c.body, "Authorization", "Bearer "+limited) }
		op.statuses[503] = func() response { return send(late, admin, c.method, c.path, c.body) }
	}

	for _, key := range slices.Sorted(maps.Keys(doc)) {
		if _, ok := ops[key]; !ok {
			t.Errorf("%s is documented but not probed here", key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(ops)) {
		op, documented := ops[key], doc[key]
		if documented.Responses == nil {
			t.Errorf("%s is served but not documented", key)
			continue
		}
		for code := range documented.Responses {
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s documents response %q, not a status", key, code)
			} else if op.statuses[status] == nil && unprovokable[status] == "" {
				t.Errorf("%s documents %d, which the test cannot provoke", key, status)
			}
		}
		for _, status := range slices.Sorted(maps.Keys(op.statuses)) {
			t.Run(key+" "+strconv.Itoa(status), func(t *testing.T) {
				want, ok := documented.Responses[strconv.Itoa(status)]
				if !ok {
					t.Fatalf("the server answers %d, which is not documented", status)
				}
				r := op.statuses[status]()
				if want.Schema != nil && want.Schema.Ref == "#/definitions/v1ErrorBody" {
					wantError(t, r, status, contractCodes[status])
				} else if r.Status != status {
					t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
				}
				if want.Schema == nil && len(r.Body) > 0 {
					t.Errorf("documented without a body, got %q", r.Body)
				}
				for name := range want.Headers {
					if r.Header.Get(name) == "" {
						t.Errorf("no %s header; got %v", name, r.Header)
					}
				}
			})
		}
	}

	// The methods documented for a path are exactly those it serves.
	paths := map[string][]string{}
	for key := range doc {
		method, path, _ := strings.Cut(key, " ")
		paths[path] = append(paths[path], method)
	}
	for path, methods := range paths {
		concrete := strings.ReplaceAll(path, "{id}", existing)
		r := send(s, admin, "PATCH", concrete, `{}`)
		wantError(t, r, http.StatusMethodNotAllowed, contractCodes[http.StatusMethodNotAllowed])
		allow := strings.Split(r.Header.Get("Allow"), ", ")
		if !slices.Equal(slices.Sorted(slices.Values(allow)), slices.Sorted(slices.Values(methods))) {
			t.Errorf("%s: Allow %v, documented %v", path, allow, methods)
		}
	}

	// Every documented query parameter is read: given twice, it is refused
	// by name. The update mask is not documented on PUT, and is ignored.
	for _, key := range slices.Sorted(maps.Keys(doc)) {
		method, path, _ := strings.Cut(key, " ")
		for _, p := range doc[key].Parameters {
			if p.In == "query" {
				r := send(s, admin, method, path+"?"+p.Name+"=1&"+p.Name+"=1", "")
				wantError(t, r, http.StatusBadRequest, "BadRequest", p.Name+"@query")
			}
		}
	}
	if r := send(s, admin, "PUT", "/v1/users/"+existing+"?updateMask=nope&updateMask=nope", `{}`); r.Status != http.StatusOK {
		t.Errorf("PUT with an updateMask query parameter: %d %s", r.Status, r.Body)
	}
}
