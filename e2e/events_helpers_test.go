package e2e

import (
	"bytes"
	"context"
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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

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
	deadline := time.Now().Add(wait(evWait))
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
		t.Fatalf("fence events not listable within %v: %+v", wait(evWait), evs)
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
