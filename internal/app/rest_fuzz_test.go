package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
)

// FuzzREST sends arbitrary requests (method, request target, header lines,
// body; with an admin token or without) over loopback to the whole server
// running in process, and holds it to the contract's promises on hostile
// input: no 5xx, every error with the JSON error body whose code word
// matches its status, and /healthz still answering afterwards. "{id}" in
// the target stands for an existing user. Run:
//
//	go test ./internal/app -run '^$' -fuzz '^FuzzREST$' -fuzztime 60s
func FuzzREST(f *testing.F) {
	keepCrashReport(f)
	s := startServer(f, seams{})
	created, err := s.users.CreateUser(f.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{}})
	if err != nil {
		f.Fatal(err)
	}
	id := created.GetUser().GetId()
	for _, seed := range restSeeds {
		f.Add(seed.method, seed.target, seed.headers, []byte(seed.body), seed.token)
	}
	c := &rawClient{addr: s.addrs.HTTP}
	f.Cleanup(c.close)
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte, withToken bool) {
		token := ""
		if withToken {
			token = s.token
		}
		method = sentMethod(method)
		target = strings.ReplaceAll(target, "{id}", id)
		// Failures show the request without the token.
		shown := rawRequest(method, target, headers, body, "")
		if why := refusedByNetHTTP(shown); why != "" {
			// net/http answers these itself, before any of this server's
			// code, and closes the connection: with body bytes still
			// unread, the client sees a reset instead of its 400/431.
			t.Skip(why)
		}
		resp, respBody, err := c.roundTrip(rawRequest(method, target, headers, body, token), method)
		if err != nil {
			t.Fatalf("no response to %q (token: %v): %v", shown, withToken, err)
		}
		if problem := contractProblem(method, resp, respBody); problem != "" {
			t.Fatalf("%s\nrequest %q (token: %v)\nresponse %d %v %q", problem, shown, withToken, resp.StatusCode, resp.Header, respBody)
		}
		health, _, err := c.roundTrip([]byte("GET /healthz HTTP/1.1\r\nHost: usersd.test\r\n\r\n"), "GET")
		if err != nil || health.StatusCode != http.StatusOK {
			t.Fatalf("/healthz after %q (token: %v): %v %v", shown, withToken, health, err)
		}
	})
}

// crashDirEnv names a directory where each fuzzing process writes the
// runtime's report of a crash. A panic on a server goroutine (not the fuzz
// function's) kills the worker process, and go test then says only
// "fuzzing process hung or terminated unexpectedly: exit status 2": the
// report is the only trace of where it was.
const crashDirEnv = "USERSD_FUZZ_CRASH_DIR"

func keepCrashReport(f *testing.F) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	out, err := os.CreateTemp(dir, "crash-*.txt")
	if err != nil {
		f.Fatal(err)
	}
	if err := debug.SetCrashOutput(out, debug.CrashOptions{}); err != nil {
		f.Fatal(err)
	}
	out.Close() // SetCrashOutput keeps its own descriptor
}

type restSeed struct {
	method, target, headers, body string
	token                         bool
}

const jsonHeader = "Content-Type: application/json"

var restSeeds = []restSeed{
	// Ordinary requests.
	{"GET", "/v1/users", "", "", true},
	{"GET", "/v1/users?limit=2", "", "", true},
	{"POST", "/v1/users", jsonHeader, `{"claims":{"email":"ana@example.com","n":1.5}}`, true},
	{"GET", "/v1/users/{id}", "If-None-Match: \"1\"", "", true},
	{"PUT", "/v1/users/{id}", jsonHeader + "\nIf-Match: *", `{"claims":{"n":9007199254740992}}`, true},
	{"DELETE", "/v1/users/0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", "", "", true},
	{"GET", "/v1/events?types=USER_CREATE_SUCCESS&dateFrom=2026-01-01T00:00:00Z&limit=5", "", "", true},
	{"GET", "/healthz", "", "", false},
	{"GET", "/openapi.json", "", "", false},
	{"GET", "/v1/users", "", "", false},
	{"HEAD", "/v1/users", "", "", true},
	// Invalid UTF-8 and bad escapes in path and query parameters.
	{"GET", "/v1/users?cursor=%ff", "", "", true},
	{"GET", "/v1/users?cursor=%ff", "", "", false},
	{"GET", "/v1/users/%ff", "", "", true},
	{"GET", "/v1/users/%C0%AF", "", "", false},
	{"GET", "/v1/users/\xff", "", "", true},
	{"PUT", "/v1/users/%ff", jsonHeader, `{"claims":{}}`, true},
	{"GET", "/v1/events?types=%ff&ids=%C0%AF&requestIds=%ff&categories=%ff&dateFrom=%ff&dateTo=%ff", "", "", true},
	{"GET", "/v1/users?limit=%zz&x=%ff&limit[x]=1&cursor.x=2;3", "", "", true},
	{"GET", "/v1/events?requestIds=a&request_ids=b", "", "", true},
	{"POST", "/v1/events", "Content-Type: application/x-www-form-urlencoded", "types=%ff", true},
	// Headers that steer the gateway's gRPC call, or try to.
	{"GET", "/v1/users", "Grpc-Timeout: 1n", "", true},
	{"GET", "/v1/users", "Grpc-Metadata-Authorization: Bearer x\nGrpc-Metadata-X-Request-Id: y", "", false},
	{"POST", "/v1/users/{id}", "X-HTTP-Method-Override: DELETE\n" + jsonHeader, "{}", true},
	{"GET", "/v1/users", "X-Request-Id: \xff\nUsersd-Rejected: 400 x", "", true},
	// Bodies.
	{"POST", "/v1/users", jsonHeader, `{"claims":{"a":9007199254740993.0,"b":9.007199254740993e15,"c":1e400,"d":90071992547409930e-1}}`, true},
	{"POST", "/v1/users", jsonHeader, "{\"claims\":{\"a\":\"\xff\"}}", true},
	{"POST", "/v1/users", jsonHeader, "\ufeff{}", true},
	{"POST", "/v1/users", jsonHeader, `{"claims":{"a":NaN,"a":1}} x`, true},
	{"POST", "/v1/users", jsonHeader, `{"claims":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`, true},
	{"POST", "/v1/users", jsonHeader + "\nContent-Encoding: gzip", `{}`, true},
	{"PUT", "/v1/users/{id}", "Content-Type: text/plain", `{}`, true},
	{"PUT", "/v1/users/{id}", jsonHeader + "\nExpect: 100-continue", `{"id":"x","authenticationProvider":null}`, true},
	// Request targets.
	{"OPTIONS", "*", "", "", true},
	{"GET", "http://usersd.test/v1/users?limit=1", "", "", true},
	{"GET", "/v1/users/{id}/extra", "", "", true},
	{"PATCH", "/v1/users/{id}", jsonHeader, `{}`, true},
}

// maxFuzzHead keeps requests within the HTTP server's header limit
// (MaxHeaderBytes, 64 KiB, with room for the token).
const maxFuzzHead = 60 << 10

// refusedByNetHTTP says why net/http's server refuses req before calling
// any handler, or "": over the header limit, unparsable by net/http's own
// request parser, or with a header or Host net/http's server rejects.
func refusedByNetHTTP(req []byte) string {
	if head, _, _ := bytes.Cut(req, []byte("\r\n\r\n")); len(head) > maxFuzzHead {
		return "request line and headers over net/http's limit"
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
	if err != nil {
		return "net/http cannot parse it: " + err.Error()
	}
	if !httpguts.ValidHostHeader(r.Host) {
		return "an invalid Host"
	}
	// net/http answers 417 to any other expectation, with an empty body.
	if e := r.Header.Get("Expect"); e != "" && !httpguts.HeaderValuesContainsToken([]string{e}, "100-continue") {
		return "an Expect other than 100-continue"
	}
	for name, values := range r.Header {
		if !httpguts.ValidHeaderFieldName(name) {
			return "an invalid header name"
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "an invalid header value"
			}
		}
	}
	return ""
}

// framingHeaders are set by rawRequest alone. A fuzzed Transfer-Encoding
// would only reach net/http's own refusal (501 for an unknown coding,
// before any handler), not this server's code.
var framingHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true}

// rawRequest builds an HTTP/1.1 request from fuzzed parts. Line breaks are
// removed from each part so that one input is one request, and spaces in
// the target are escaped so that it stays one field of the request line.
func rawRequest(method, target, headers string, body []byte, token string) []byte {
	oneLine := strings.NewReplacer("\r", "", "\n", "")
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: usersd.test\r\n",
		sentMethod(method), oneLine.Replace(strings.ReplaceAll(target, " ", "%20")))
	for line := range strings.SplitSeq(headers, "\n") {
		name, _, _ := strings.Cut(line, ":")
		if line = oneLine.Replace(line); line == "" || framingHeaders[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))] {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	if token != "" {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// sentMethod is a method as rawRequest puts it on the request line:
// without spaces or line breaks. The response must be read for that
// method: one to HEAD has no body, whatever its Content-Length says.
func sentMethod(method string) string {
	return strings.NewReplacer(" ", "", "\r", "", "\n", "").Replace(method)
}

// rawClient sends raw requests on one kept-alive connection, so a long
// fuzz run does not use up loopback ports.
type rawClient struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// roundTrip sends req and reads its final response. A kept-alive
// connection the server has closed meanwhile is retried once on a new one.
func (c *rawClient) roundTrip(req []byte, method string) (*http.Response, []byte, error) {
	reused := c.conn != nil
	resp, body, err := c.try(req, method)
	if err != nil && reused {
		resp, body, err = c.try(req, method)
	}
	return resp, body, err
}

func (c *rawClient) try(req []byte, method string) (*http.Response, []byte, error) {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return nil, nil, err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	// A stalled server fails the input instead of hanging the run.
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		c.close()
		return nil, nil, err
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return nil, nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
		if err != nil {
			c.close()
			return nil, nil, err
		}
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Close {
			c.close()
		}
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, body.Bytes(), nil
		}
		// 100 Continue (Expect): the final response follows.
	}
}

// contractProblem says how a response breaks the contract, or "".
func contractProblem(method string, resp *http.Response, body []byte) string {
	status := resp.StatusCode
	switch {
	case status >= 500:
		return "a 5xx"
	case status < 300 || status == http.StatusNotModified:
		return ""
	case status < 400:
		return "an unexpected 3xx"
	case isLibraryRefusal(method, resp, body):
		return ""
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return "error with Content-Type " + strconv.Quote(ct)
	}
	switch {
	case status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "":
		return "401 without WWW-Authenticate"
	case status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "":
		return "405 without Allow"
	case method == http.MethodHead:
		return "" // no body to check
	}
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Value    *string `json:"value"`
			Msg      string  `json:"msg"`
			Param    *string `json:"param"`
			Location string  `json:"location"`
		} `json:"details"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return "error body is not the contract's: " + err.Error()
	}
	if dec.More() {
		return "data after the error body"
	}
	if e.Code != rpcerr.Word(status) || e.Message == "" {
		return fmt.Sprintf("code %q message %q for status %d", e.Code, e.Message, status)
	}
	for _, d := range e.Details {
		switch {
		case d.Value == nil || d.Param == nil || d.Msg == "":
			return "detail without value, param or msg"
		case d.Location != "params" && d.Location != "query" && d.Location != "body" && d.Location != "headers":
			return "detail location " + strconv.Quote(d.Location)
		}
	}
	if len(e.Details) > rpcerr.MaxViolations {
		return fmt.Sprintf("%d details", len(e.Details))
	}
	return ""
}

// isLibraryRefusal recognises net/http's own plain answer to a request it
// could not parse, before any routing, which the contract allows. (It has
// a body even for HEAD, which the client then does not read.)
func isLibraryRefusal(method string, resp *http.Response, body []byte) bool {
	prefix := strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	return resp.Header.Get("Content-Type") == "text/plain; charset=utf-8" && resp.Close &&
		(method == http.MethodHead || bytes.HasPrefix(body, []byte(prefix)))
}
