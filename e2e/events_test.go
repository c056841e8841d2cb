package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	_ "modernc.org/sqlite"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// Analytic events end to end: GET /v1/events (and the ListEvents RPC) as a
// client sees them, driven by REST and gRPC users operations.
//
// Asynchronous events (START, the outcome of reads and of failures) are
// written by one FIFO writer, and every event of a call is queued before
// its response is sent. So once a later "fence" request's FAIL is
// listable, every event of every request answered before the fence is
// too: the tests then check exact event sets without fixed waits.

// evWait bounds how long a test polls for asynchronous events (the
// contract promises one second).
const evWait = 5 * time.Second

var (
	evTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	evType      = regexp.MustCompile(`^USER_(CREATE|RETRIEVE|UPDATE|DELETE|RETRIEVE_LIST|SEARCH)_(START|SUCCESS|FAIL)$`)
	evLowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	evCodeWords = []string{"BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed", "Conflict",
		"PreconditionFailed", "PayloadTooLarge", "UnsupportedMediaType", "TooManyRequests", "InternalServerError", "ServiceUnavailable"}
	evKeys = []string{"category", "clientId", "data", "id", "metadata", "requestId", "timestamp", "type"}
)

// evEvent is one analytic event as the API returns it.
type evEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Category  string          `json:"category"`
	RequestID string          `json:"requestId"`
	ClientID  string          `json:"clientId"`
	Metadata  map[string]any  `json:"metadata"`
	Data      json.RawMessage `json:"data"`
}

// olderThan reports whether e is listed after o: (timestamp, id)
// order, newest first.
func (e evEvent) olderThan(o evEvent) bool {
	if e.Timestamp != o.Timestamp {
		return e.Timestamp < o.Timestamp // fixed-width UTC text sorts as time
	}
	return e.ID < o.ID
}

// evPage is one page of GET /v1/events.
type evPage struct {
	Events     []evEvent
	NextCursor string
	HasNext    bool
	Raw        []byte
}

// evRID returns a fresh, valid request id with a readable prefix.
func evRID(prefix string) string { return prefix + "-" + randomHex(8) }

// evToken returns a token for a fresh subject with the given role; the
// subject is returned too (it is the clientId of the events).
func evToken(t *testing.T, prefix, role string) (token, subject string) {
	t.Helper()
	subject = prefix + "-" + randomHex(6)
	return tokenFor(t, auth.TokenSpec{Subject: subject, Roles: []string{role}}), subject
}

// evDo sends a REST request with the given token ("" sends none) and
// request id ("" sends none).
func evDo(t *testing.T, s *server, token, rid, method, path, body string, headers ...string) response {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	h := append([]string{"Authorization", auth, "X-Request-Id", rid}, headers...)
	return s.do(t, method, path, body, h...)
}

// evWantEcho asserts that a REST response echoes the request id.
func evWantEcho(t *testing.T, r response, rid string) {
	t.Helper()
	if got := r.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != rid {
		t.Fatalf("X-Request-Id %q, want %q (status %d %s)", got, rid, r.Status, r.Body)
	}
}

// evGRPC returns a client on its own connection sending token ("" sends
// none).
func evGRPC(t *testing.T, s *server, token string) usersv1.UserServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(s.GRPCAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return usersv1.NewUserServiceClient(conn)
}

// evCtx is a call context carrying the request id ("" carries none).
func evCtx(t *testing.T, rid string) context.Context {
	if rid == "" {
		return t.Context()
	}
	return metadata.AppendToOutgoingContext(t.Context(), "x-request-id", rid)
}

// evWantHeaderRID asserts the x-request-id header metadata of a gRPC call.
func evWantHeaderRID(t *testing.T, md metadata.MD, rid string) {
	t.Helper()
	if got := md.Get("x-request-id"); len(got) != 1 || got[0] != rid {
		t.Fatalf("x-request-id header metadata %q, want %q", got, rid)
	}
}

// evParse decodes and checks a GET /v1/events body.
func evParse(t *testing.T, what string, body []byte) evPage {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("%s: body %s: %v", what, body, err)
	}
	for k := range raw {
		if k != "data" && k != "nextCursor" {
			t.Fatalf("%s: unexpected key %q in %s", what, k, body)
		}
	}
	data, ok := raw["data"]
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		t.Fatalf("%s: \"data\" is not an array: %s", what, body)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		t.Fatalf("%s: data: %v", what, err)
	}
	p := evPage{Raw: body}
	for _, item := range items {
		p.Events = append(p.Events, evDecode(t, what, item))
	}
	for i := 1; i < len(p.Events); i++ {
		if !p.Events[i].olderThan(p.Events[i-1]) {
			t.Fatalf("%s: not newest first: %+v listed after %+v", what, p.Events[i], p.Events[i-1])
		}
	}
	if nc, ok := raw["nextCursor"]; ok {
		p.HasNext = true
		if err := json.Unmarshal(nc, &p.NextCursor); err != nil || p.NextCursor == "" {
			t.Fatalf("%s: nextCursor %s", what, nc)
		}
	}
	return p
}

// evDecode decodes one event and checks everything the contract says of
// every event.
func evDecode(t *testing.T, what string, item json.RawMessage) evEvent {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(item, &keys); err != nil {
		t.Fatalf("%s: event %s: %v", what, item, err)
	}
	if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, evKeys) {
		t.Fatalf("%s: event keys %v, want %v: %s", what, got, evKeys, item)
	}
	var e evEvent
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: event %s: %v", what, item, err)
	}
	bad := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: event %s: %s", what, item, fmt.Sprintf(format, args...))
	}
	if !lowerUUIDv7.MatchString(e.ID) {
		bad("id is not a lower-case UUIDv7")
	}
	if !evType.MatchString(e.Type) {
		bad("unknown type")
	}
	if !evTimestamp.MatchString(e.Timestamp) {
		bad("timestamp is not UTC with exactly three fractional digits")
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
		bad("timestamp: %v", err)
	}
	if e.Category != "user" {
		bad("category %q", e.Category)
	}
	if !validRequestID.MatchString(e.RequestID) {
		bad("requestId is not a valid request id")
	}
	if e.ClientID == "" {
		bad("no clientId")
	}
	if string(bytes.TrimSpace(e.Data)) != "null" {
		bad("data is not null")
	}
	if string(bytes.TrimSpace(keys["metadata"]))[0] != '{' || e.Metadata == nil {
		bad("metadata is not an object")
	}
	for k, v := range e.Metadata {
		switch k {
		case "userId":
			if s, ok := v.(string); !ok || !evLowerUUID.MatchString(s) {
				bad("metadata.userId is not a lower-case UUID")
			}
		case "limit", "entriesCount":
			if f, ok := v.(float64); !ok || f != float64(int64(f)) || f < 0 {
				bad("metadata.%s is not a count", k)
			}
		case "code":
			if s, ok := v.(string); !ok || !slices.Contains(evCodeWords, s) {
				bad("metadata.code is not a contract code word")
			}
			if !strings.HasSuffix(e.Type, "_FAIL") {
				bad("metadata.code on a non-FAIL event")
			}
		default:
			bad("metadata key %q (only userId, limit, entriesCount, code are allowed)", k)
		}
	}
	if strings.HasSuffix(e.Type, "_FAIL") {
		if _, ok := e.Metadata["code"]; !ok {
			bad("FAIL without metadata.code")
		}
	}
	return e
}

// evList fetches one page of GET /v1/events?query with token.
func evList(t *testing.T, s *server, token, query string) evPage {
	t.Helper()
	path := "/v1/events"
	if query != "" {
		path += "?" + query
	}
	r := evDo(t, s, token, "", "GET", path, "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	return evParse(t, "GET "+path, r.Body)
}

// evAll pages through GET /v1/events?query with the given page size and
// checks the paging: newest first across pages, no duplicate, no empty
// page, nextCursor only when another page follows (full pages).
func evAll(t *testing.T, s *server, token, query string, limit int) []evEvent {
	t.Helper()
	var all []evEvent
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging did not end")
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		q.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := evList(t, s, token, q.Encode())
		if len(p.Events) == 0 && pages > 0 {
			t.Fatalf("empty page after cursor %q (query %s)", cursor, query)
		}
		if p.HasNext && len(p.Events) != limit {
			t.Fatalf("page of %d events with a nextCursor, want %d (query %s)", len(p.Events), limit, query)
		}
		if len(p.Events) > limit {
			t.Fatalf("page of %d events, limit %d", len(p.Events), limit)
		}
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Fatalf("event %s listed twice (query %s, limit %d)", e.ID, query, limit)
			}
			seen[e.ID] = true
			if len(all) > 0 && !e.olderThan(all[len(all)-1]) {
				t.Fatalf("not newest first across pages: %+v after %+v", e, all[len(all)-1])
			}
			all = append(all, e)
		}
		if !p.HasNext {
			return all
		}
		cursor = p.NextCursor
	}
}

// evByRequest returns the events of one request id, newest first.
func evByRequest(t *testing.T, s *server, token, rid string) []evEvent {
	t.Helper()
	p := evList(t, s, token, "limit=1000&requestIds="+url.QueryEscape(rid))
	if p.HasNext {
		t.Fatalf("more than 1000 events for request %s", rid)
	}
	for _, e := range p.Events {
		if e.RequestID != rid {
			t.Fatalf("requestIds=%s listed an event of request %s", rid, e.RequestID)
		}
	}
	return p.Events
}

// evPoll polls (bounded) until the request has at least n events.
func evPoll(t *testing.T, s *server, token, rid string, n int) []evEvent {
	t.Helper()
	deadline := time.Now().Add(evWait)
	for {
		evs := evByRequest(t, s, token, rid)
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// evFence makes a request whose events are queued after those of every
// request answered so far and waits until they are listable: after it,
// every event of those earlier requests is listable too.
func evFence(t *testing.T, s *server, token string) {
	t.Helper()
	rid := evRID("fence")
	if r := evDo(t, s, adminToken, rid, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
		t.Fatalf("fence: %d %s", r.Status, r.Body)
	}
	if evs := evPoll(t, s, token, rid, 2); len(evs) != 2 || evs[0].Type != "USER_RETRIEVE_FAIL" {
		t.Fatalf("fence events not listable within %v: %+v", evWait, evs)
	}
}

func evTypes(evs []evEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func evIDs(evs []evEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// evWantPair asserts that evs (one request, newest first) are exactly
// <op>_START then <op>_<outcome>, of the request and client, and returns
// them.
func evWantPair(t *testing.T, evs []evEvent, rid, client, op, outcome string) (startEv, end evEvent) {
	t.Helper()
	want := []string{op + "_" + outcome, op + "_START"}
	if got := evTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("request %s: events %v, want %v (newest first): %+v", rid, got, want, evs)
	}
	for _, e := range evs {
		if e.RequestID != rid || e.ClientID != client {
			t.Fatalf("request %s: event %+v, want requestId %s clientId %s", rid, e, rid, client)
		}
	}
	end, startEv = evs[0], evs[1]
	if end.Timestamp < startEv.Timestamp {
		t.Fatalf("request %s: %s at %s before its START at %s", rid, end.Type, end.Timestamp, startEv.Timestamp)
	}
	return startEv, end
}

// evWantMeta asserts exact metadata.
func evWantMeta(t *testing.T, e evEvent, want map[string]any) {
	t.Helper()
	if !maps.EqualFunc(e.Metadata, want, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Fatalf("%s of request %s: metadata %v, want %v", e.Type, e.RequestID, e.Metadata, want)
	}
}

// evWantMetaWithin asserts that every metadata entry is one of allowed.
func evWantMetaWithin(t *testing.T, e evEvent, allowed map[string]any) {
	t.Helper()
	for k, v := range e.Metadata {
		if a, ok := allowed[k]; !ok || fmt.Sprint(a) != fmt.Sprint(v) {
			t.Fatalf("%s of request %s: metadata %v, want a subset of %v", e.Type, e.RequestID, e.Metadata, allowed)
		}
	}
}

// evWantMutationListed asserts that the SUCCESS of a mutation is listable
// right after its response (START may or may not be there yet).
func evWantMutationListed(t *testing.T, s *server, token, rid, op, userID string) {
	t.Helper()
	evs := evByRequest(t, s, token, rid)
	var success []evEvent
	for _, e := range evs {
		switch e.Type {
		case op + "_SUCCESS":
			success = append(success, e)
		case op + "_START":
		default:
			t.Fatalf("request %s: unexpected %s: %+v", rid, e.Type, evs)
		}
	}
	if len(success) != 1 {
		t.Fatalf("request %s: %d %s_SUCCESS events right after the response, want 1: %+v", rid, len(success), op, evs)
	}
	if got := success[0].Metadata["userId"]; got != userID {
		t.Fatalf("request %s: SUCCESS metadata.userId %v, want %s", rid, got, userID)
	}
}

func TestEventsPairsPerOperation(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "pairs-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "pairs-issuer", auth.RoleIssuer)

	// want is what the events of one request must be once all are written.
	type want struct {
		rid, op     string
		successMeta map[string]any
	}
	var wants []want
	expect := func(rid, op string, meta map[string]any) {
		wants = append(wants, want{rid, op, meta})
	}

	t.Run("transport=REST", func(t *testing.T) {
		rid := evRID("rest-create")
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{"claims":{"k":"v"}}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		evWantEcho(t, r, rid)
		id := r.JSON(t)["id"].(string)
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", id)
		expect(rid, "USER_CREATE", map[string]any{"userId": id})

		rid = evRID("rest-get")
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		expect(rid, "USER_RETRIEVE", map[string]any{"userId": id})

		rid = evRID("rest-update")
		if r := evDo(t, s, token, rid, "PUT", "/v1/users/"+id, `{"claims":{"k":"w"}}`); r.Status != http.StatusOK {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		// An update that changes nothing still succeeds, with its event.
		rid = evRID("rest-update-empty")
		if r := evDo(t, s, token, rid, "PUT", "/v1/users/"+id, `{}`); r.Status != http.StatusOK {
			t.Fatalf("empty update: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		rid = evRID("rest-list")
		r = evDo(t, s, token, rid, "GET", "/v1/users?limit=5", "")
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		n := len(r.JSON(t)["data"].([]any))
		if n == 0 {
			t.Fatal("list is empty")
		}
		expect(rid, "USER_RETRIEVE_LIST", map[string]any{"limit": 5, "entriesCount": n})

		rid = evRID("rest-delete")
		if r := evDo(t, s, token, rid, "DELETE", "/v1/users/"+id, ""); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_DELETE", id)
		expect(rid, "USER_DELETE", map[string]any{"userId": id})
	})

	t.Run("transport=gRPC", func(t *testing.T) {
		c := evGRPC(t, s, token)
		var hdr metadata.MD
		rid := evRID("grpc-create")
		created, err := c.CreateUser(evCtx(t, rid), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claimsV(1)}}, grpc.Header(&hdr))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		evWantHeaderRID(t, hdr, rid)
		id := created.GetUser().GetId()
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", id)
		expect(rid, "USER_CREATE", map[string]any{"userId": id})

		rid = evRID("grpc-get")
		if _, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: id}); err != nil {
			t.Fatalf("get: %v", err)
		}
		expect(rid, "USER_RETRIEVE", map[string]any{"userId": id})

		rid = evRID("grpc-update")
		if _, err := c.UpdateUser(evCtx(t, rid), &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claimsV(2)}, UpdateMask: mask("claims")}); err != nil {
			t.Fatalf("update: %v", err)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		rid = evRID("grpc-list")
		list, err := c.ListUsers(evCtx(t, rid), &usersv1.ListUsersRequest{}) // default limit
		if err != nil || len(list.GetData()) == 0 {
			t.Fatalf("list: %v %v", list, err)
		}
		expect(rid, "USER_RETRIEVE_LIST", map[string]any{"limit": 100, "entriesCount": len(list.GetData())})

		rid = evRID("grpc-delete")
		if _, err := c.DeleteUser(evCtx(t, rid), &usersv1.DeleteUserRequest{Id: id}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_DELETE", id)
		expect(rid, "USER_DELETE", map[string]any{"userId": id})
	})

	// START and read events within a bounded time; then exact pairs.
	for _, w := range wants {
		evPoll(t, s, auditor, w.rid, 2)
	}
	evFence(t, s, auditor)
	for _, w := range wants {
		startEv, success := evWantPair(t, evByRequest(t, s, auditor, w.rid), w.rid, subject, w.op, "SUCCESS")
		evWantMeta(t, success, w.successMeta)
		evWantMetaWithin(t, startEv, w.successMeta)
	}
	if len(wants) != 11 {
		t.Fatalf("%d requests checked, want 11", len(wants))
	}
}

func TestEventsFailPairs(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, auditorSubject := evToken(t, "fail-auditor", auth.RoleAuditor)
	admin, adminSubject := evToken(t, "fail-admin", auth.RoleAdmin)
	issuer, issuerSubject := evToken(t, "fail-issuer", auth.RoleIssuer)
	expired, err := auth.IssueHS256(testSecret, auth.TokenSpec{Subject: "expired-" + randomHex(4), Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := auth.IssueHS256([]byte("another-secret-0123456789abcdef-0123456789"), auth.TokenSpec{Subject: "foreign-" + randomHex(4), Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	existing := createUser(t, s, `{"claims":{"a":1},"authenticationProvider":`+provider("linked-"+randomHex(6))+`}`)
	id := existing["id"].(string)
	linked := existing["authenticationProvider"].(map[string]any)["subjectId"].(string)
	other := createUser(t, s, `{"claims":{"b":2}}`)["id"].(string)
	big := `{"claims":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`

	// A case is one request; its events must be exactly START then FAIL
	// with code (or none when code is "").
	type failCase struct {
		name, rid  string
		client, op string
		code       string
		userID     string // metadata.userId the FAIL must carry ("" = not checked)
		noUserID   bool   // the FAIL must carry no userId
		anyUserID  bool   // the FAIL may carry a userId (not checked)
		pathUserID string // a userId, when present, must be this one
	}
	var cases []failCase
	rest := func(c failCase, token, method, path, body string, status int, code string, details []string, headers ...string) {
		t.Helper()
		c.rid = evRID("fail")
		r := evDo(t, s, token, c.rid, method, path, body, headers...)
		wantError(t, r, status, code, details...)
		evWantEcho(t, r, c.rid)
		if status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: 401 without WWW-Authenticate", c.name)
		}
		cases = append(cases, c)
	}
	grpcCall := func(c failCase, token string, want codes.Code, call func(usersv1.UserServiceClient, context.Context, ...grpc.CallOption) error) {
		t.Helper()
		c.rid = evRID("fail-grpc")
		var hdr metadata.MD
		err := call(evGRPC(t, s, token), evCtx(t, c.rid), grpc.Header(&hdr))
		wantCode(t, err, want)
		evWantHeaderRID(t, hdr, c.rid)
		cases = append(cases, c)
	}

	// 404 of a missing user: FAIL NotFound naming it.
	rest(failCase{name: "REST get missing", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID},
		admin, "GET", "/v1/users/"+missingID, "", 404, "NotFound", nil)
	rest(failCase{name: "REST get missing, upper case id", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID},
		admin, "GET", "/v1/users/"+strings.ToUpper(missingID), "", 404, "NotFound", nil)
	rest(failCase{name: "REST delete missing", client: adminSubject, op: "USER_DELETE", code: "NotFound", userID: missingID},
		admin, "DELETE", "/v1/users/"+missingID, "", 404, "NotFound", nil)
	rest(failCase{name: "REST update missing", client: issuerSubject, op: "USER_UPDATE", code: "NotFound", userID: missingID},
		issuer, "PUT", "/v1/users/"+missingID, `{"claims":{"a":2}}`, 404, "NotFound", nil)
	// 400 found by the service.
	rest(failCase{name: "REST get bad id", client: adminSubject, op: "USER_RETRIEVE", code: "BadRequest", noUserID: true},
		admin, "GET", "/v1/users/not-a-uuid", "", 400, "BadRequest", []string{"id@params"})
	rest(failCase{name: "REST delete bad id", client: adminSubject, op: "USER_DELETE", code: "BadRequest", noUserID: true},
		admin, "DELETE", "/v1/users/"+strings.ReplaceAll(missingID, "-", ""), "", 400, "BadRequest", []string{"id@params"})
	rest(failCase{name: "REST create with bad provider", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"authenticationProvider":{"providerId":"x","url":"ftp://x","subjectId":"s"}}`, 400, "BadRequest",
		[]string{"authenticationProvider.providerId@body", "authenticationProvider.url@body"})
	rest(failCase{name: "REST list limit 0", client: adminSubject, op: "USER_RETRIEVE_LIST", code: "BadRequest"},
		admin, "GET", "/v1/users?limit=0", "", 400, "BadRequest", []string{"limit@query"})
	// 400 refused by the gateway on HTTP grounds: still START and FAIL.
	rest(failCase{name: "REST create malformed JSON", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":`, 400, "BadRequest", nil)
	rest(failCase{name: "REST create unknown field", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"nope":1}`, 400, "BadRequest", []string{"nope@body"})
	rest(failCase{name: "REST update unknown field", client: adminSubject, op: "USER_UPDATE", code: "BadRequest", pathUserID: id},
		admin, "PUT", "/v1/users/"+id, `{"claims":{},"nope":1}`, 400, "BadRequest", []string{"nope@body"})
	rest(failCase{name: "REST list limit abc", client: adminSubject, op: "USER_RETRIEVE_LIST", code: "BadRequest"},
		admin, "GET", "/v1/users?limit=abc", "", 400, "BadRequest", []string{"limit@query"})
	rest(failCase{name: "REST create 413", client: adminSubject, op: "USER_CREATE", code: "PayloadTooLarge", noUserID: true},
		admin, "POST", "/v1/users", big, 413, "PayloadTooLarge", nil)
	rest(failCase{name: "REST update 413", client: issuerSubject, op: "USER_UPDATE", code: "PayloadTooLarge", pathUserID: id},
		issuer, "PUT", "/v1/users/"+id, big, 413, "PayloadTooLarge", nil)
	rest(failCase{name: "REST create 415", client: adminSubject, op: "USER_CREATE", code: "UnsupportedMediaType", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":{}}`, 415, "UnsupportedMediaType", nil, "Content-Type", "text/plain")
	rest(failCase{name: "REST create 415 gzip", client: adminSubject, op: "USER_CREATE", code: "UnsupportedMediaType", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":{}}`, 415, "UnsupportedMediaType", nil, "Content-Encoding", "gzip")
	// 409 link conflicts.
	rest(failCase{name: "REST create conflict", client: adminSubject, op: "USER_CREATE", code: "Conflict", anyUserID: true},
		admin, "POST", "/v1/users", `{"authenticationProvider":`+provider(linked)+`}`, 409, "Conflict", nil)
	rest(failCase{name: "REST update conflict", client: adminSubject, op: "USER_UPDATE", code: "Conflict", userID: other},
		admin, "PUT", "/v1/users/"+other, `{"authenticationProvider":`+provider(linked)+`}`, 409, "Conflict", nil)
	// 403: a valid token without the role records START and FAIL.
	rest(failCase{name: "REST auditor creates", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true},
		auditor, "POST", "/v1/users", `{"claims":{}}`, 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor gets", client: auditorSubject, op: "USER_RETRIEVE", code: "Forbidden", pathUserID: id},
		auditor, "GET", "/v1/users/"+id, "", 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor lists", client: auditorSubject, op: "USER_RETRIEVE_LIST", code: "Forbidden"},
		auditor, "GET", "/v1/users", "", 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor malformed body", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true},
		auditor, "POST", "/v1/users", `{"claims":`, 403, "Forbidden", nil)
	// No valid token: no events at all.
	rest(failCase{name: "REST no token"}, "", "GET", "/v1/users", "", 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, create"}, "", "POST", "/v1/users", `{"claims":{}}`, 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, malformed body"}, "", "POST", "/v1/users", `{"claims":`, 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, 413"}, "", "POST", "/v1/users", big, 401, "Unauthorized", nil)
	rest(failCase{name: "REST garbage token"}, "", "GET", "/v1/users/"+id, "", 401, "Unauthorized", nil, "Authorization", "Bearer garbage")
	rest(failCase{name: "REST expired token"}, expired, "DELETE", "/v1/users/"+id, "", 401, "Unauthorized", nil)
	rest(failCase{name: "REST foreign token"}, foreign, "PUT", "/v1/users/"+id, `{}`, 401, "Unauthorized", nil)
	// The events query records nothing, whatever its outcome.
	cases = append(cases, func() failCase {
		c := failCase{name: "REST list events", rid: evRID("events-query")}
		r := evDo(t, s, auditor, c.rid, "GET", "/v1/events", "")
		if r.Status != 200 {
			t.Fatalf("list events: %d %s", r.Status, r.Body)
		}
		evWantEcho(t, r, c.rid)
		return c
	}())
	rest(failCase{name: "REST list events by issuer"}, issuer, "GET", "/v1/events", "", 403, "Forbidden", nil)
	rest(failCase{name: "REST list events bad filter"}, admin, "GET", "/v1/events?ids=x", "", 400, "BadRequest", []string{"ids@query"})
	rest(failCase{name: "REST list events no token"}, "", "GET", "/v1/events", "", 401, "Unauthorized", nil)

	// gRPC.
	grpcCall(failCase{name: "gRPC get missing", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID}, admin, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: missingID}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC delete missing", client: issuerSubject, op: "USER_DELETE", code: "NotFound", userID: missingID}, issuer, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: missingID}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC update missing", client: adminSubject, op: "USER_UPDATE", code: "NotFound", userID: missingID}, admin, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: missingID, User: &usersv1.User{Claims: claimsV(1)}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC update bad id", client: adminSubject, op: "USER_UPDATE", code: "BadRequest", noUserID: true}, admin, codes.InvalidArgument,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: "nope", User: &usersv1.User{Claims: claimsV(1)}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC create conflict", client: adminSubject, op: "USER_CREATE", code: "Conflict", anyUserID: true}, admin, codes.AlreadyExists,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{
				ProviderId: providerA, Url: "https://example-university.au.auth0.com", SubjectId: linked}}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC auditor creates", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true}, auditor, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC auditor deletes", client: auditorSubject, op: "USER_DELETE", code: "Forbidden", pathUserID: id}, auditor, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC no token"}, "", codes.Unauthenticated,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC garbage token"}, "garbage", codes.Unauthenticated,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC list events"}, auditor, codes.OK,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.ListEvents(ctx, &usersv1.ListEventsRequest{}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC list events by issuer"}, issuer, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.ListEvents(ctx, &usersv1.ListEventsRequest{}, o...)
			return err
		})

	evFence(t, s, auditor)
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			evs := evByRequest(t, s, auditor, c.rid)
			if c.code == "" {
				if len(evs) != 0 {
					t.Fatalf("request %s recorded %d events, want none: %+v", c.rid, len(evs), evs)
				}
				return
			}
			startEv, fail := evWantPair(t, evs, c.rid, c.client, c.op, "FAIL")
			if got := fail.Metadata["code"]; got != c.code {
				t.Fatalf("FAIL code %v, want %s", got, c.code)
			}
			got, has := fail.Metadata["userId"]
			switch {
			case c.userID != "" && got != c.userID:
				t.Fatalf("FAIL metadata.userId %v, want %s", got, c.userID)
			case c.noUserID && has:
				t.Fatalf("FAIL metadata.userId %v, want none", got)
			case c.pathUserID != "" && has && got != c.pathUserID:
				t.Fatalf("FAIL metadata.userId %v, want %s or none", got, c.pathUserID)
			case c.userID == "" && !c.anyUserID && c.pathUserID == "" && has:
				t.Fatalf("FAIL metadata.userId %v, want none", got)
			}
			allowed := maps.Clone(fail.Metadata)
			delete(allowed, "code")
			evWantMetaWithin(t, startEv, allowed)
		})
	}
}

func TestEventsFiltersAndPaging(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "filters-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "filters-issuer", auth.RoleIssuer)

	// 30 calls with distinct request ids: 60 events, plus the fence's 2.
	var createRIDs, getRIDs, listRIDs, missRIDs, ids []string
	for i := range 10 {
		rid := evRID(fmt.Sprintf("create%02d", i))
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{"claims":{"i":`+strconv.Itoa(i)+`}}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		createRIDs = append(createRIDs, rid)
		ids = append(ids, r.JSON(t)["id"].(string))
	}
	for i, id := range ids {
		rid := evRID(fmt.Sprintf("get%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		getRIDs = append(getRIDs, rid)
	}
	for i := range 5 {
		rid := evRID(fmt.Sprintf("list%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users?limit=3", ""); r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		listRIDs = append(listRIDs, rid)
		rid = evRID(fmt.Sprintf("miss%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
			t.Fatalf("get missing: %d %s", r.Status, r.Body)
		}
		missRIDs = append(missRIDs, rid)
	}
	evFence(t, s, auditor)

	all := evAll(t, s, auditor, "", 1000)
	if len(all) != 62 {
		t.Fatalf("%d events, want 62 (30 calls and the fence): %v", len(all), evTypes(all))
	}
	count := map[string]int{}
	for _, e := range all {
		count[e.Type]++
		if e.ClientID != subject && e.ClientID != "e2e-admin" {
			t.Fatalf("event of client %q", e.ClientID)
		}
	}
	wantCount := map[string]int{
		"USER_CREATE_START": 10, "USER_CREATE_SUCCESS": 10,
		"USER_RETRIEVE_START": 16, "USER_RETRIEVE_SUCCESS": 10, "USER_RETRIEVE_FAIL": 6,
		"USER_RETRIEVE_LIST_START": 5, "USER_RETRIEVE_LIST_SUCCESS": 5,
	}
	if !maps.Equal(count, wantCount) {
		t.Fatalf("events by type %v, want %v", count, wantCount)
	}
	// Without a filter and with the default limit, one page of all 62.
	if p := evList(t, s, auditor, ""); p.HasNext || !slices.Equal(evIDs(p.Events), evIDs(all)) {
		t.Fatalf("default listing: %d events, next %v", len(p.Events), p.HasNext)
	}

	// filtered is what a filter must return: the matching events of all,
	// in the same order.
	filtered := func(pred func(evEvent) bool) []string {
		var out []string
		for _, e := range all {
			if pred(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	check := func(t *testing.T, query string, want []string) {
		t.Helper()
		for _, limit := range []int{1000, 4} {
			if got := evIDs(evAll(t, s, auditor, query, limit)); !slices.Equal(got, want) {
				t.Fatalf("?%s (limit %d): %d events %v, want %d %v", query, limit, len(got), got, len(want), want)
			}
		}
	}
	ofType := func(types ...string) func(evEvent) bool {
		return func(e evEvent) bool { return slices.Contains(types, e.Type) }
	}
	everything := func(evEvent) bool { return true }
	byRID := map[string][]evEvent{}
	for _, e := range all {
		byRID[e.RequestID] = append(byRID[e.RequestID], e)
	}
	ts := func(e evEvent) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, e.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	newer, older := all[10], all[45]
	const micros = "2006-01-02T15:04:05.000000Z07:00"

	for _, tc := range []struct {
		name, query string
		pred        func(evEvent) bool
	}{
		{"types", "types=USER_CREATE_SUCCESS,USER_RETRIEVE_FAIL", ofType("USER_CREATE_SUCCESS", "USER_RETRIEVE_FAIL")},
		{"types repeated", "types=USER_CREATE_SUCCESS,USER_CREATE_SUCCESS", ofType("USER_CREATE_SUCCESS")},
		{"unknown category or a type", "categories=nope&types=USER_CREATE_SUCCESS", ofType("USER_CREATE_SUCCESS")},
		{"category", "categories=user", everything},
		{"category or type", "categories=user&types=USER_CREATE_SUCCESS", everything},
		{"categories repeated or type", "categories=user,user,nope&types=USER_CREATE_SUCCESS,USER_DELETE_FAIL", everything},
		{"unknown category", "categories=nope", func(evEvent) bool { return false }},
		{"unknown type", "types=USER_DELETE_SUCCESS", func(evEvent) bool { return false }},
		{"ids", "ids=" + all[3].ID + "," + all[50].ID, func(e evEvent) bool { return e.ID == all[3].ID || e.ID == all[50].ID }},
		{"ids and type", "ids=" + all[3].ID + "," + all[50].ID + "&types=" + all[50].Type, func(e evEvent) bool { return e.ID == all[50].ID }},
		{"unknown id", "ids=" + missingID, func(evEvent) bool { return false }},
		{"request ids", "requestIds=" + createRIDs[2] + "," + missRIDs[4], func(e evEvent) bool { return e.RequestID == createRIDs[2] || e.RequestID == missRIDs[4] }},
		{"request id and type", "requestIds=" + createRIDs[2] + "&types=USER_CREATE_START", func(e evEvent) bool {
			return e.RequestID == createRIDs[2] && e.Type == "USER_CREATE_START"
		}},
		{"request id and unknown category", "requestIds=" + createRIDs[2] + "&categories=nope", func(evEvent) bool { return false }},
		{"unknown request id", "requestIds=nobody-sent-this", func(evEvent) bool { return false }},
		{"all request ids", "requestIds=" + strings.Join(slices.Concat(createRIDs, getRIDs, listRIDs, missRIDs), ","), func(e evEvent) bool { return !strings.HasPrefix(e.RequestID, "fence-") }},
		{"date range", "dateFrom=" + older.Timestamp + "&dateTo=" + newer.Timestamp, func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"one millisecond", "dateFrom=" + newer.Timestamp + "&dateTo=" + newer.Timestamp, func(e evEvent) bool { return e.Timestamp == newer.Timestamp }},
		{"date from", "dateFrom=" + older.Timestamp, func(e evEvent) bool { return e.Timestamp >= older.Timestamp }},
		{"date to", "dateTo=" + newer.Timestamp, func(e evEvent) bool { return e.Timestamp <= newer.Timestamp }},
		{"date range with offsets", "dateFrom=" + url.QueryEscape(ts(older).In(time.FixedZone("", 5*3600+1800)).Format("2006-01-02T15:04:05.000Z07:00")) +
			"&dateTo=" + url.QueryEscape(ts(newer).In(time.FixedZone("", -8*3600)).Format("2006-01-02T15:04:05.000Z07:00")), func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"date range within milliseconds", "dateFrom=" + ts(older).Add(500*time.Microsecond).Format(micros) +
			"&dateTo=" + ts(newer).Add(500*time.Microsecond).Format(micros), func(e evEvent) bool {
			return e.Timestamp > older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"seconds only", "dateFrom=" + ts(all[61]).Truncate(time.Second).Format(time.RFC3339), everything},
		{"date range and types", "dateFrom=" + older.Timestamp + "&dateTo=" + newer.Timestamp + "&types=USER_RETRIEVE_START", func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp && e.Type == "USER_RETRIEVE_START"
		}},
		{"future", "dateFrom=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), func(evEvent) bool { return false }},
		{"past", "dateTo=2000-01-01T00:00:00Z", func(evEvent) bool { return false }},
	} {
		t.Run("filter="+tc.name, func(t *testing.T) {
			want := filtered(tc.pred)
			check(t, tc.query, want)
			if len(want) == 0 {
				p := evList(t, s, auditor, tc.query)
				if p.HasNext || !bytes.Equal(p.Raw, []byte(`{"data":[]}`)) {
					t.Fatalf("?%s matching nothing: %s, want {\"data\":[]}", tc.query, p.Raw)
				}
			}
		})
	}
	if n := len(filtered(func(e evEvent) bool { return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp })); n < 36 {
		t.Fatalf("the date range selects %d events, want at least 36", n)
	}

	t.Run("case=ids in upper case", func(t *testing.T) {
		// Ids are UUIDs, whose letters may be of either case (§3). The
		// server may refuse an upper-case id with ids@query, or find the
		// event; accepting it and finding nothing is a bug.
		r := evDo(t, s, auditor, "", "GET", "/v1/events?ids="+strings.ToUpper(all[50].ID), "")
		if r.Status == http.StatusBadRequest {
			wantError(t, r, 400, "BadRequest", "ids@query")
			return
		}
		p := evParse(t, "upper-case ids", r.Body)
		if len(p.Events) == 1 && p.Events[0].ID == all[50].ID {
			return
		}
		t.Fatalf("ids=<UPPER-CASE UUID> is accepted but does not find its event: %s", r.Body)
	})

	t.Run("case=paging", func(t *testing.T) {
		for _, limit := range []int{1, 2, 7, 31, 61, 62, 63} {
			if got := evIDs(evAll(t, s, auditor, "", limit)); !slices.Equal(got, evIDs(all)) {
				t.Fatalf("limit %d: %d events, want %d", limit, len(got), len(all))
			}
		}
		// 20 events of the creates: full last pages have no nextCursor.
		q := "requestIds=" + strings.Join(createRIDs, ",")
		for limit, pages := range map[int]int{5: 4, 10: 2, 20: 1, 19: 2, 21: 1} {
			n, cursor := 0, ""
			for {
				query := q + "&limit=" + strconv.Itoa(limit)
				if cursor != "" {
					query += "&cursor=" + url.QueryEscape(cursor)
				}
				p := evList(t, s, auditor, query)
				n++
				if !p.HasNext {
					break
				}
				cursor = p.NextCursor
				if n > pages {
					break
				}
			}
			if n != pages {
				t.Fatalf("limit %d over 20 events: %d pages, want %d", limit, n, pages)
			}
		}
	})

	t.Run("case=cursor is stable while events are added", func(t *testing.T) {
		first := evList(t, s, auditor, "limit=10")
		if !first.HasNext || !slices.Equal(evIDs(first.Events), evIDs(all[:10])) {
			t.Fatalf("first page: %v", evIDs(first.Events))
		}
		// New events, newer than all: they must not show up behind the cursor.
		rid := evRID("late")
		if r := evDo(t, s, token, rid, "POST", "/v1/users", `{}`); r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		evPoll(t, s, auditor, rid, 2)
		got := evIDs(evAll(t, s, auditor, "cursor="+url.QueryEscape(first.NextCursor), 10))
		if !slices.Equal(got, evIDs(all[10:])) {
			t.Fatalf("after the cursor: %d events, want %d", len(got), len(all)-10)
		}
		now := evList(t, s, auditor, "limit=2")
		if evTypes(now.Events)[0] != "USER_CREATE_SUCCESS" && evTypes(now.Events)[0] != "USER_CREATE_START" {
			t.Fatalf("newest events %v", evTypes(now.Events))
		}
	})

	t.Run("case=gRPC", func(t *testing.T) {
		c := evGRPC(t, s, auditor)
		two := int32(2)
		resp, err := c.ListEvents(t.Context(), &usersv1.ListEventsRequest{Limit: &two, RequestIds: createRIDs[0] + "," + getRIDs[0]})
		if err != nil {
			t.Fatal(err)
		}
		resp2, err := c.ListEvents(t.Context(), &usersv1.ListEventsRequest{Limit: &two, RequestIds: createRIDs[0] + "," + getRIDs[0], Cursor: resp.GetNextCursor()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.NextCursor == nil || resp2.NextCursor != nil {
			t.Fatalf("gRPC paging cursors %v %v", resp.NextCursor, resp2.NextCursor)
		}
		var got []string
		for _, e := range slices.Concat(resp.GetData(), resp2.GetData()) {
			got = append(got, e.GetId())
			if e.GetData().GetKind() == nil {
				t.Fatalf("gRPC event without data: %v", e)
			}
			if _, ok := e.GetData().GetKind().(*structpb.Value_NullValue); !ok {
				t.Fatalf("gRPC event data %v, want null", e.GetData())
			}
		}
		want := evIDs(append(slices.Clone(byRID[createRIDs[0]]), byRID[getRIDs[0]]...))
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Fatalf("gRPC listing %v, want %v", got, want)
		}
		_, err = c.ListEvents(t.Context(), &usersv1.ListEventsRequest{RequestIds: "bad id", DateFrom: "yesterday"})
		wantViolations(t, err, "request_ids", "date_from")
	})

	t.Run("case=invalid filters", func(t *testing.T) {
		two := getPage(t, s, 2, "")
		if !two.HasNextCursor {
			t.Fatal("no ListUsers cursor")
		}
		first := evList(t, s, auditor, "limit=1")
		if !first.HasNext {
			t.Fatalf("limit=1 over %d+ events has no nextCursor: %s", len(all), first.Raw)
		}
		evCursor := first.NextCursor
		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprintf("r%d", i)
		}
		for _, tc := range []struct {
			query   string
			details []string
		}{
			{"limit=0", []string{"limit@query"}},
			{"limit=abc", []string{"limit@query"}},
			{"limit=-1", []string{"limit@query"}},
			{"limit=1001", []string{"limit@query"}},
			{"limit=1.5", []string{"limit@query"}},
			{"limit=1&limit=2", []string{"limit@query"}},
			{"cursor=garbage", []string{"cursor@query"}},
			{"cursor=" + url.QueryEscape(two.NextCursor), []string{"cursor@query"}},
			{"cursor=" + url.QueryEscape(evCursor[:len(evCursor)-2]), []string{"cursor@query"}},
			{"ids=not-a-uuid", []string{"ids@query"}},
			{"ids=" + all[0].ID + ",not-a-uuid", []string{"ids@query"}},
			{"ids=" + all[0].ID + ",", []string{"ids@query"}},
			{"ids=%7B" + all[0].ID + "%7D", []string{"ids@query"}},
			{"dateFrom=yesterday", []string{"dateFrom@query"}},
			{"dateTo=2026-13-01T00:00:00Z", []string{"dateTo@query"}},
			{"dateFrom=2026-01-01", []string{"dateFrom@query"}},
			{"requestIds=bad%20id", []string{"requestIds@query"}},
			{"requestIds=" + strings.Repeat("a", 129), []string{"requestIds@query"}},
			{"requestIds=" + strings.Join(many, ","), []string{"requestIds@query"}},
			{"types=bad%20type", []string{"types@query"}},
			{"categories=" + strings.Repeat("c", 65), []string{"categories@query"}},
			{"limit=0&ids=x&dateFrom=y&cursor=garbage", []string{"limit@query", "ids@query", "dateFrom@query", "cursor@query"}},
		} {
			t.Run("query="+tc.query[:min(len(tc.query), 40)], func(t *testing.T) {
				r := evDo(t, s, auditor, "", "GET", "/v1/events?"+tc.query, "")
				wantError(t, r, 400, "BadRequest", tc.details...)
			})
		}
		// An events cursor means nothing to the users listing either.
		wantError(t, s.do(t, "GET", "/v1/users?cursor="+url.QueryEscape(evCursor), ""), 400, "BadRequest", "cursor@query")
		// dateFrom after dateTo: one detail, on either bound.
		r := evDo(t, s, auditor, "", "GET", "/v1/events?dateFrom="+newer.Timestamp+"&dateTo="+older.Timestamp, "")
		if newer.Timestamp > older.Timestamp {
			e := wantError(t, r, 400, "BadRequest")
			if len(e.Details) != 1 || e.Details[0].Location != "query" || (e.Details[0].Param != "dateTo" && e.Details[0].Param != "dateFrom") {
				t.Fatalf("dateFrom after dateTo: %s", r.Body)
			}
		}
	})
}

func TestEventsRoles(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, auditorSubject := evToken(t, "roles-auditor", auth.RoleAuditor)
	admin, _ := evToken(t, "roles-admin", auth.RoleAdmin)
	issuer, _ := evToken(t, "roles-issuer", auth.RoleIssuer)
	nobody, _ := evToken(t, "roles-none", "guest")
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)

	for _, tok := range []string{auditor, admin} {
		if r := evDo(t, s, tok, "", "GET", "/v1/events", ""); r.Status != http.StatusOK {
			t.Fatalf("GET /v1/events: %d %s", r.Status, r.Body)
		}
		if _, err := evGRPC(t, s, tok).ListEvents(t.Context(), &usersv1.ListEventsRequest{}); err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
	}
	for _, tok := range []string{issuer, nobody} {
		wantError(t, evDo(t, s, tok, "", "GET", "/v1/events", ""), 403, "Forbidden")
		wantError(t, evDo(t, s, tok, "", "GET", "/v1/events?limit=abc", ""), 403, "Forbidden")
		_, err := evGRPC(t, s, tok).ListEvents(t.Context(), &usersv1.ListEventsRequest{})
		wantCode(t, err, codes.PermissionDenied)
	}
	wantError(t, evDo(t, s, "", "", "GET", "/v1/events", ""), 401, "Unauthorized")

	opOf := map[string]string{} // request id → operation
	for _, req := range []struct{ method, path, body, op string }{
		{"POST", "/v1/users", `{"claims":{}}`, "USER_CREATE"},
		{"GET", "/v1/users/" + id, "", "USER_RETRIEVE"},
		{"PUT", "/v1/users/" + id, `{"claims":{"b":2}}`, "USER_UPDATE"},
		{"DELETE", "/v1/users/" + id, "", "USER_DELETE"},
		{"GET", "/v1/users", "", "USER_RETRIEVE_LIST"},
	} {
		rid := evRID("auditor")
		wantError(t, evDo(t, s, auditor, rid, req.method, req.path, req.body), 403, "Forbidden")
		opOf[rid] = req.op
	}
	ac := evGRPC(t, s, auditor)
	ctxRID := evRID("auditor-grpc")
	_, err := ac.UpdateUser(evCtx(t, ctxRID), &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claimsV(3)}})
	wantCode(t, err, codes.PermissionDenied)
	opOf[ctxRID] = "USER_UPDATE"
	// Nothing changed.
	if r := s.do(t, "GET", "/v1/users/"+id, ""); r.Status != 200 || !strings.Contains(string(r.Body), `"claims":{"a":1}`) {
		t.Fatalf("after the refused calls: %d %s", r.Status, r.Body)
	}
	evFence(t, s, auditor)
	for rid, op := range opOf {
		_, fail := evWantPair(t, evByRequest(t, s, auditor, rid), rid, auditorSubject, op, "FAIL")
		if fail.Metadata["code"] != "Forbidden" {
			t.Fatalf("request %s: FAIL %v", rid, fail.Metadata)
		}
	}
}

func TestEventsCarryNoPersonalData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// At debug level, so every line the server can write is checked.
	s := start(t, dir, "--log-level", "debug")
	auditor, _ := evToken(t, "pii-auditor", auth.RoleAuditor)
	token, _ := evToken(t, "pii-admin", auth.RoleAdmin)
	// claimMarker is only ever sent as claims or a provider subject;
	// inputMarker in other places a client controls (path, query, headers).
	claimMarker := "claimmark" + randomHex(10)
	inputMarker := "inputmark" + randomHex(10)
	subj := "subj-" + claimMarker
	claims := `{"email":"` + claimMarker + `@example.com","` + claimMarker + `":true,"nested":{"deep":{"list":["` + claimMarker + `",{"k":"` + claimMarker + `"}]}}}`

	ok := func(r response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%d %s, want %d", r.Status, r.Body, status)
		}
	}
	bad := func(r response) {
		t.Helper()
		if r.Status < 400 || r.Status >= 500 {
			t.Fatalf("%d %s, want a 4xx", r.Status, r.Body)
		}
	}
	do := func(method, path, body string, headers ...string) response {
		t.Helper()
		return evDo(t, s, token, evRID("pii"), method, path, body, headers...)
	}
	r := do("POST", "/v1/users", `{"claims":`+claims+`,"authenticationProvider":`+provider(subj)+`}`)
	ok(r, http.StatusCreated)
	id1 := r.JSON(t)["id"].(string)
	c := evGRPC(t, s, token)
	u2, err := c.CreateUser(evCtx(t, evRID("pii")), &usersv1.CreateUserRequest{User: &usersv1.User{
		Claims: mustStruct(t, map[string]any{"name": claimMarker, "nested": map[string]any{"a": []any{claimMarker}}}),
		AuthenticationProvider: &usersv1.AuthenticationProvider{
			ProviderId: providerA, Url: "https://example.com/" + claimMarker, SubjectId: subj + "-2"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id2 := u2.GetUser().GetId()
	ok(do("PUT", "/v1/users/"+id1, `{"claims":{"note":"`+claimMarker+`-updated","nested":{"x":["`+claimMarker+`"]}}}`), 200)
	if _, err := c.UpdateUser(evCtx(t, evRID("pii")), &usersv1.UpdateUserRequest{Id: id2, User: &usersv1.User{
		Claims: mustStruct(t, map[string]any{"again": claimMarker})}}); err != nil {
		t.Fatal(err)
	}
	ok(do("GET", "/v1/users/"+id1, ""), 200)
	if _, err := c.GetUser(evCtx(t, evRID("pii")), &usersv1.GetUserRequest{Id: id2}); err != nil {
		t.Fatal(err)
	}
	ok(do("GET", "/v1/users?limit=10", ""), 200)
	if _, err := c.ListUsers(evCtx(t, evRID("pii")), &usersv1.ListUsersRequest{}); err != nil {
		t.Fatal(err)
	}
	// Refused requests carrying the markers.
	bad(do("POST", "/v1/users", `{"authenticationProvider":`+provider(subj)+`}`)) // 409
	bad(do("POST", "/v1/users", `{"claims":{"note":"`+claimMarker+`"`))           // malformed
	bad(do("POST", "/v1/users", `{"claims":{"note":"`+claimMarker+`"},"`+claimMarker+`":1}`))
	bad(do("PUT", "/v1/users/"+id1, `{"claims":{"n":"`+claimMarker+`"}}}`))
	bad(do("POST", "/v1/users", `{"claims":{"big":"`+strings.Repeat(claimMarker, 70<<10/len(claimMarker))+`"}}`))
	bad(do("POST", "/v1/users", `{"claims":{"t":"`+claimMarker+`"}}`, "Content-Type", "text/plain"))
	bad(do("POST", "/v1/users", `{"claims":`+strings.Repeat(`{"`+claimMarker+`":`, 12)+`1`+strings.Repeat(`}`, 12)+`}`))
	bad(do("PUT", "/v1/users/"+id1, `{"claims":{"n":1},"id":"`+claimMarker+`"}`))
	bad(do("GET", "/v1/users/"+inputMarker, ""))
	bad(do("DELETE", "/v1/users/"+inputMarker+"-"+missingID, ""))
	bad(do("GET", "/v1/users?cursor="+inputMarker, ""))
	bad(do("GET", "/v1/users?limit="+inputMarker, ""))
	ok(do("GET", "/v1/users/"+id1, "", "X-Request-Id", "bad "+inputMarker), 200)
	ok(do("GET", "/v1/users/"+id1, "", "X-Request-Id", inputMarker+strings.Repeat("x", 120)), 200)
	ok(do("GET", "/v1/users/"+id1, "", "X-Forwarded-For", inputMarker, "User-Agent", inputMarker), 200)
	_, err = c.GetUser(evCtx(t, "bad "+inputMarker), &usersv1.GetUserRequest{Id: inputMarker})
	wantCode(t, err, codes.InvalidArgument)
	// The events query records nothing, even with markers in its filters.
	ok(evDo(t, s, auditor, evRID("pii"), "GET", "/v1/events?types="+inputMarker+"&requestIds="+inputMarker, ""), 200)
	ok(do("DELETE", "/v1/users/"+id1, ""), 204)
	if _, err := c.DeleteUser(evCtx(t, evRID("pii")), &usersv1.DeleteUserRequest{Id: id2}); err != nil {
		t.Fatal(err)
	}
	evFence(t, s, auditor)

	// Page through every event, looking at the raw JSON.
	listed, pages, cursor := 0, 0, ""
	for {
		q := "limit=25"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := evList(t, s, auditor, q)
		pages++
		listed += len(p.Events)
		for _, m := range []string{claimMarker, inputMarker} {
			if bytes.Contains(p.Raw, []byte(m)) {
				t.Errorf("a marker %s appears in the events: %s", m, p.Raw)
			}
		}
		if !p.HasNext {
			break
		}
		cursor = p.NextCursor
	}
	// 2 creates, 2 updates, 2 gets, 2 lists, 12 refusals with a token,
	// 3 gets with odd headers, 1 gRPC refusal, 2 deletes, the fence: 2
	// events each.
	if want := 2 * 27; listed != want {
		t.Errorf("%d events listed, want %d", listed, want)
	}
	if strings.Contains(s.logs.String(), claimMarker) {
		t.Errorf("claims appear in the server log")
	}
	if strings.Contains(s.logs.String(), inputMarker) {
		t.Errorf("raw client input (a path, query, header or request id that was refused) appears in the server log")
	}
	for _, tok := range []string{token, auditor, string(testSecret)} {
		if strings.Contains(s.logs.String(), tok) {
			t.Errorf("a token or the secret appears in the server log")
		}
	}
	if !strings.Contains(s.logs.String(), `"msg":"decision"`) {
		t.Errorf("no debug lines: the check above saw less than the server can write")
	}
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s.logs)
	}

	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.DB}).EscapedPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT * FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	stored, fences := 0, 0
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		stored++
		for i, v := range vals {
			if strings.HasPrefix(v.String, "fence-") {
				fences++
			}
			for _, m := range []string{claimMarker, inputMarker} {
				if strings.Contains(v.String, m) {
					t.Errorf("events.%s holds a marker: %q", cols[i], v.String)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if stored != listed || fences != 2 {
		t.Fatalf("%d rows in events (%d of the fence), %d events listed: the scan reads the wrong table", stored, fences, listed)
	}
}

func TestEventsRequestID(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "rid-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "rid-issuer", auth.RoleIssuer)
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	c := evGRPC(t, s, token)

	type sent struct {
		rid, op, outcome string
	}
	var calls []sent
	valid := []string{
		"rid-" + randomHex(8),
		"Ab.9_-" + randomHex(4),
		randomHex(64), // 128 characters
	}
	invalid := []string{
		"has space",
		strings.Repeat("a", 129),
		"semi;colon",
		"ümlaut",
	}

	t.Run("case=REST", func(t *testing.T) {
		for _, rid := range valid {
			r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, "")
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			evWantEcho(t, r, rid)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
			rid = rid[:len(rid)-1] + "Z"
			r = evDo(t, s, token, rid, "GET", "/v1/users/"+missingID, "")
			wantError(t, r, 404, "NotFound")
			evWantEcho(t, r, rid)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "FAIL"})
		}
		for _, rid := range invalid {
			for _, path := range []string{"/v1/users/" + id, "/v1/users/" + missingID} {
				r := evDo(t, s, token, "", "GET", path, "", "X-Request-Id", rid)
				got := r.Header.Get("X-Request-Id")
				if got == rid || !validRequestID.MatchString(got) || len(r.Header.Values("X-Request-Id")) != 1 {
					t.Fatalf("X-Request-Id %q sent, %q echoed: want a generated valid one", rid, r.Header.Values("X-Request-Id"))
				}
				outcome := "SUCCESS"
				if r.Status != 200 {
					wantError(t, r, 404, "NotFound")
					outcome = "FAIL"
				}
				calls = append(calls, sent{got, "USER_RETRIEVE", outcome})
			}
		}
		// A generated id when none is sent, also on a 401.
		r := evDo(t, s, token, "", "POST", "/v1/users", `{}`)
		if got := r.Header.Get("X-Request-Id"); r.Status != 201 || !validRequestID.MatchString(got) {
			t.Fatalf("no X-Request-Id sent: %d, echoed %q", r.Status, got)
		} else {
			calls = append(calls, sent{got, "USER_CREATE", "SUCCESS"})
		}
		r = evDo(t, s, "", "rid-401-"+randomHex(4), "GET", "/v1/users", "")
		wantError(t, r, 401, "Unauthorized")
		evWantEcho(t, r, r.Header.Get("X-Request-Id"))
		if !strings.HasPrefix(r.Header.Get("X-Request-Id"), "rid-401-") {
			t.Fatalf("401 echoes %q", r.Header.Get("X-Request-Id"))
		}
	})

	t.Run("case=gRPC", func(t *testing.T) {
		for _, rid := range valid {
			rid = "g" + rid[1:] // not the ids REST used
			var hdr metadata.MD
			if _, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: id}, grpc.Header(&hdr)); err != nil {
				t.Fatal(err)
			}
			evWantHeaderRID(t, hdr, rid)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
			rid = rid[:len(rid)-1] + "Y"
			hdr = nil
			_, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: missingID}, grpc.Header(&hdr))
			wantCode(t, err, codes.NotFound)
			evWantHeaderRID(t, hdr, rid)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "FAIL"})
		}
		for _, rid := range invalid[:3] { // gRPC metadata values are ASCII
			for _, uid := range []string{id, missingID} {
				var hdr metadata.MD
				_, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: uid}, grpc.Header(&hdr))
				got := hdr.Get("x-request-id")
				if len(got) != 1 || got[0] == rid || !validRequestID.MatchString(got[0]) {
					t.Fatalf("x-request-id %q sent, %q echoed: want a generated valid one", rid, got)
				}
				outcome := "SUCCESS"
				if err != nil {
					wantCode(t, err, codes.NotFound)
					outcome = "FAIL"
				}
				calls = append(calls, sent{got[0], "USER_RETRIEVE", outcome})
			}
		}
		var hdr metadata.MD
		_, err := evGRPC(t, s, "").GetUser(evCtx(t, "rid-unauth-1"), &usersv1.GetUserRequest{Id: id}, grpc.Header(&hdr))
		wantCode(t, err, codes.Unauthenticated)
		evWantHeaderRID(t, hdr, "rid-unauth-1")
	})

	for _, cl := range calls {
		evPoll(t, s, auditor, cl.rid, 2)
	}
	evFence(t, s, auditor)
	seen := map[string]bool{}
	for _, cl := range calls {
		if seen[cl.rid] {
			t.Fatalf("request id %s used twice", cl.rid)
		}
		seen[cl.rid] = true
		evWantPair(t, evByRequest(t, s, auditor, cl.rid), cl.rid, subject, cl.op, cl.outcome)
	}
	if len(calls) != 27 {
		t.Fatalf("%d calls checked", len(calls))
	}
}

func TestEventsGracefulShutdownFlushes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	token, subject := evToken(t, "flush-issuer", auth.RoleIssuer)
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	c := evGRPC(t, s, token)

	type sent struct{ rid, op, outcome string }
	var calls []sent
	for i := range 20 {
		rid := evRID(fmt.Sprintf("flush-rest%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
		rid = evRID(fmt.Sprintf("flush-grpc%02d", i))
		if _, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
		if i%4 == 0 {
			rid = evRID(fmt.Sprintf("flush-list%02d", i))
			if _, err := c.ListUsers(evCtx(t, rid), &usersv1.ListUsersRequest{}); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, sent{rid, "USER_RETRIEVE_LIST", "SUCCESS"})
			rid = evRID(fmt.Sprintf("flush-miss%02d", i))
			_, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: missingID})
			wantCode(t, err, codes.NotFound)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "FAIL"})
		}
	}
	// SIGTERM right after the last response: the writer's buffer is full
	// of events not yet written.
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s.logs)
	}

	s2 := start(t, dir)
	auditor, _ := evToken(t, "flush-auditor", auth.RoleAuditor)
	var rids []string
	for _, cl := range calls {
		rids = append(rids, cl.rid)
	}
	got := map[string][]evEvent{}
	for _, e := range evAll(t, s2, auditor, "requestIds="+strings.Join(rids, ","), 1000) {
		got[e.RequestID] = append(got[e.RequestID], e)
	}
	for _, cl := range calls {
		evWantPair(t, got[cl.rid], cl.rid, subject, cl.op, cl.outcome)
	}
	if len(calls) != 50 {
		t.Fatalf("%d calls", len(calls))
	}
}

// The mark by which the REST gateway tells the gRPC server that it refused
// a request is for the gateway alone: a native gRPC client sending it must
// not get its valid call refused, nor a FAIL event with a made-up code.
func TestEventsGatewayMarkFromClients(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "mark-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "mark-admin", auth.RoleAdmin)

	// Over REST the mark cannot be smuggled in as a header.
	rid := evRID("mark-rest")
	for _, h := range []string{"Usersd-Rejected", "Grpc-Metadata-Usersd-Rejected"} {
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{}`, h, "413")
		if r.Status != http.StatusCreated {
			t.Fatalf("POST with %s: %d %s", h, r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", r.JSON(t)["id"].(string))
		rid = evRID("mark-rest")
	}

	rid = evRID("mark-grpc")
	ctx := metadata.AppendToOutgoingContext(evCtx(t, rid), "usersd-rejected", "413")
	_, err := evGRPC(t, s, token).CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}})
	if err == nil {
		evFence(t, s, auditor)
		evWantPair(t, evByRequest(t, s, auditor, rid), rid, subject, "USER_CREATE", "SUCCESS")
		return
	}
	evFence(t, s, auditor)
	evs := evByRequest(t, s, auditor, rid)
	t.Fatalf("a native gRPC CreateUser with a forged usersd-rejected mark is refused (%v) and recorded as %v",
		err, evTypes(evs))
}
