package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRESTMalformedRequests(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	deep := strings.Repeat(`{"a":`, 11) + `1` + strings.Repeat(`}`, 11)
	veryDeep := strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000)
	bigClaims := `{"claims":{"k":"` + strings.Repeat("x", 16<<10) + `"}}`

	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
		details                  []string // param@location; nil = not checked
	}{
		// Path parameters.
		{"case=id not a uuid", "GET", "/v1/users/not-a-uuid", "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=id in braces", "GET", "/v1/users/%7B" + id + "%7D", "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=id as urn", "DELETE", "/v1/users/urn:uuid:" + id, "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=id as bare hex", "PUT", "/v1/users/" + strings.ReplaceAll(id, "-", ""), "{}", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=id with space", "GET", "/v1/users/%20" + id, "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=id with NUL", "GET", "/v1/users/" + id + "%00", "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=empty id", "GET", "/v1/users/", "", nil, 400, "BadRequest", []string{"id@params"}},
		{"case=missing user", "GET", "/v1/users/" + missingID, "", nil, 404, "NotFound", nil},
		// Routing.
		{"case=unknown path", "GET", "/v1/nope", "", nil, 404, "NotFound", nil},
		{"case=unknown nested path", "GET", "/v1/users/" + id + "/extra", "", nil, 404, "NotFound", nil},
		{"case=root", "GET", "/", "", nil, 404, "NotFound", nil},
		{"case=wrong method on item", "POST", "/v1/users/" + id, "{}", nil, 405, "MethodNotAllowed", nil},
		{"case=wrong method on collection", "DELETE", "/v1/users", "", nil, 405, "MethodNotAllowed", nil},
		{"case=patch", "PATCH", "/v1/users/" + id, "{}", nil, 405, "MethodNotAllowed", nil},
		{"case=method override ignored", "POST", "/v1/users/" + id, "{}", []string{"X-HTTP-Method-Override", "DELETE"}, 405, "MethodNotAllowed", nil},
		{"case=wrong method on healthz", "POST", "/healthz", "{}", nil, 405, "MethodNotAllowed", nil},
		// Query parameters.
		{"case=limit not a number", "GET", "/v1/users?limit=abc", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit fraction", "GET", "/v1/users?limit=1.5", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit zero", "GET", "/v1/users?limit=0", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit negative", "GET", "/v1/users?limit=-1", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit too large", "GET", "/v1/users?limit=1001", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit overflows int32", "GET", "/v1/users?limit=99999999999", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=limit twice", "GET", "/v1/users?limit=1&limit=2", "", nil, 400, "BadRequest", []string{"limit@query"}},
		{"case=cursor not issued", "GET", "/v1/users?cursor=bm90LWEtY3Vyc29y", "", nil, 400, "BadRequest", []string{"cursor@query"}},
		{"case=bad limit and cursor", "GET", "/v1/users?limit=0&cursor=x", "", nil, 400, "BadRequest", []string{"limit@query", "cursor@query"}},
		// Bodies: syntax.
		{"case=malformed json", "POST", "/v1/users", `{"claims":`, nil, 400, "BadRequest", nil},
		{"case=trailing data", "POST", "/v1/users", `{}x`, nil, 400, "BadRequest", nil},
		{"case=two values", "POST", "/v1/users", `{} {}`, nil, 400, "BadRequest", nil},
		{"case=array body", "POST", "/v1/users", `[]`, nil, 400, "BadRequest", nil},
		{"case=null body", "PUT", "/v1/users/" + id, `null`, nil, 400, "BadRequest", nil},
		{"case=byte order mark", "POST", "/v1/users", "\ufeff{}", nil, 400, "BadRequest", nil},
		{"case=invalid utf-8", "POST", "/v1/users", "{\"claims\":{\"a\":\"\xff\"}}", nil, 400, "BadRequest", nil},
		{"case=NaN", "POST", "/v1/users", `{"claims":{"a":NaN}}`, nil, 400, "BadRequest", nil},
		{"case=comment", "POST", "/v1/users", `{/* c */}`, nil, 400, "BadRequest", nil},
		{"case=duplicate key", "POST", "/v1/users", `{"claims":{"a":1,"a":2}}`, nil, 400, "BadRequest", []string{"claims.a@body"}},
		{"case=duplicate top-level key", "POST", "/v1/users", `{"claims":{},"claims":{}}`, nil, 400, "BadRequest", []string{"claims@body"}},
		{"case=number overflows double", "POST", "/v1/users", `{"claims":{"a":1e400}}`, nil, 400, "BadRequest", []string{"claims.a@body"}},
		{"case=integer beyond 2^53", "POST", "/v1/users", `{"claims":{"a":9007199254740993}}`, nil, 400, "BadRequest", []string{"claims.a@body"}},
		{"case=deep nesting", "POST", "/v1/users", `{"claims":` + deep + `}`, nil, 400, "BadRequest", nil},
		{"case=very deep nesting", "POST", "/v1/users", `{"claims":{"a":` + veryDeep + `}}`, nil, 400, "BadRequest", nil},
		// Bodies: schema.
		{"case=unknown field", "POST", "/v1/users", `{"claimz":{}}`, nil, 400, "BadRequest", []string{"claimz@body"}},
		{"case=id on create", "POST", "/v1/users", `{"id":"` + id + `"}`, nil, 400, "BadRequest", []string{"id@body"}},
		{"case=claims not an object", "POST", "/v1/users", `{"claims":"x"}`, nil, 400, "BadRequest", []string{"claims@body"}},
		{"case=unknown and wrong type together", "POST", "/v1/users", `{"x":1,"claims":[]}`, nil, 400, "BadRequest", []string{"x@body", "claims@body"}},
		{"case=provider wrong type", "POST", "/v1/users", `{"authenticationProvider":{"providerId":1,"url":"https://a.example","subjectId":"s"}}`, nil, 400, "BadRequest", []string{"authenticationProvider.providerId@body"}},
		{"case=provider fields all invalid", "POST", "/v1/users", `{"authenticationProvider":{"providerId":"x","url":"nope","subjectId":""}}`, nil, 400, "BadRequest",
			[]string{"authenticationProvider.providerId@body", "authenticationProvider.url@body", "authenticationProvider.subjectId@body"}},
		{"case=provider unknown field", "PUT", "/v1/users/" + id, `{"authenticationProvider":{"providerId":"` + providerA + `","url":"https://a.example","subjectId":"s","extra":1}}`, nil, 400, "BadRequest", []string{"authenticationProvider.extra@body"}},
		{"case=subject with control character", "POST", "/v1/users", `{"authenticationProvider":{"providerId":"` + providerA + `","url":"https://a.example","subjectId":"a\u0085b"}}`, nil, 400, "BadRequest", []string{"authenticationProvider.subjectId@body"}},
		{"case=claims too large", "POST", "/v1/users", bigClaims, nil, 400, "BadRequest", []string{"claims@body"}},
		{"case=claims too deep", "POST", "/v1/users", `{"claims":{"a":[` + strings.Repeat(`{"a":`, 9) + `1` + strings.Repeat(`}`, 9) + `]}}`, nil, 400, "BadRequest", []string{"claims.a[0].a.a.a.a.a.a.a.a@body"}},
		{"case=claims at the depth limit are fine", "PUT", "/v1/users/" + id, `{"claims":` + strings.Repeat(`{"a":`, 10) + `1` + strings.Repeat(`}`, 10) + `}`, nil, 200, "", nil},
		{"case=empty claim key", "PUT", "/v1/users/" + id, `{"claims":{"":1}}`, nil, 400, "BadRequest", []string{"claims@body"}},
		{"case=bad path id and bad body together", "PUT", "/v1/users/nope", `{"claims":{"":1}}`, nil, 400, "BadRequest", []string{"id@params", "claims@body"}},
		// Media type, encoding, size.
		{"case=text/plain", "POST", "/v1/users", `{}`, []string{"Content-Type", "text/plain"}, 415, "UnsupportedMediaType", nil},
		{"case=no content type with a body", "POST", "/v1/users", `{}`, []string{"Content-Type", ""}, 415, "UnsupportedMediaType", nil},
		{"case=form", "PUT", "/v1/users/" + id, `a=b`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "UnsupportedMediaType", nil},
		{"case=gzip", "POST", "/v1/users", `{}`, []string{"Content-Encoding", "gzip"}, 415, "UnsupportedMediaType", nil},
		{"case=body over 64 KiB", "POST", "/v1/users", `{"claims":{"k":"` + strings.Repeat("x", 70<<10) + `"}}`, nil, 413, "PayloadTooLarge", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.method, tc.path, tc.body, tc.headers...)
			if tc.status < 300 {
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
				}
				return
			}
			e := wantError(t, r, tc.status, tc.code, tc.details...)
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("error response without X-Request-Id")
			}
			for _, d := range e.Details {
				if len(d.Value) > 256 {
					t.Errorf("detail value of %d bytes", len(d.Value))
				}
			}
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}

	t.Run("case=Allow lists the methods of the path", func(t *testing.T) {
		r := s.do(t, "PATCH", "/v1/users/"+id, "{}")
		if got := r.Header.Get("Allow"); got != "GET, PUT, DELETE" {
			t.Fatalf("Allow %q", got)
		}
		if got := s.do(t, "PUT", "/v1/users", "{}").Header.Get("Allow"); got != "POST, GET" {
			t.Fatalf("Allow %q", got)
		}
	})
	t.Run("case=detail values quote the input", func(t *testing.T) {
		e := wantError(t, s.do(t, "GET", "/v1/users/not-a-uuid", ""), 400, "BadRequest", "id@params")
		if e.Details[0].Value != "not-a-uuid" {
			t.Fatalf("value %q", e.Details[0].Value)
		}
		e = wantError(t, s.do(t, "GET", "/v1/users?limit=abc", ""), 400, "BadRequest", "limit@query")
		if e.Details[0].Value != "abc" {
			t.Fatalf("value %q", e.Details[0].Value)
		}
		e = wantError(t, s.do(t, "POST", "/v1/users", `{"authenticationProvider":{"providerId":"`+providerA+`","url":"ftp://x","subjectId":"s"}}`), 400, "BadRequest", "authenticationProvider.url@body")
		if e.Details[0].Value != "ftp://x" {
			t.Fatalf("value %q", e.Details[0].Value)
		}
	})
	t.Run("case=caller's request id is echoed on errors", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/users/nope", "", "X-Request-Id", "trace-abc.1")
		if got := r.Header.Get("X-Request-Id"); got != "trace-abc.1" {
			t.Fatalf("X-Request-Id %q", got)
		}
	})
	t.Run("case=chunked body over the limit is 413 without reading it all", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{"claims":{"k":"`))
			chunk := strings.Repeat("x", 8<<10)
			for i := 0; i < 1024; i++ { // up to 8 MiB, far past the limit
				if _, err := pw.Write([]byte(chunk)); err != nil {
					return
				}
			}
			pw.Close()
		}()
		defer pw.CloseWithError(io.ErrClosedPipe)
		req, _ := http.NewRequest("POST", "http://"+s.HTTPAddr+"/v1/users", pr)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("case=server still serves after all that", func(t *testing.T) {
		if r := s.do(t, "GET", "/v1/users/"+id, ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}

// A client that sends headers slowly is cut off without blocking others.
func TestRESTStalledClientDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	conn, err := net.Dial("tcp", s.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	done := make(chan response, 1)
	go func() { done <- s.do(t, "POST", "/v1/users", `{}`) }()
	select {
	case r := <-done:
		if r.Status != 201 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	case <-time.After(wait(10 * time.Second)):
		t.Fatal("a stalled client blocked another request")
	}
	// The server cuts the stalled request off (its read timeout is 30 s):
	// it answers 400/408 or closes the connection. Our own deadline (that
	// timeout and some slack) expiring first means it never did.
	conn.SetReadDeadline(time.Now().Add(30*time.Second + wait(15*time.Second)))
	status, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the server never cut off the stalled request")
	case status != "" && !strings.Contains(status, "400") && !strings.Contains(status, "408"):
		t.Fatalf("stalled request got %q", status)
	}
}
