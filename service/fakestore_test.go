package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/store"
)

// fakeStore is a store.Store double for handler tests: it records every
// call a handler makes, with its arguments, and answers from what the test
// set up. The methods handlers never call are left to the embedded nil
// interface, so calling one panics and names itself in the trace.
type fakeStore struct {
	store.Store
	calls []storeCall

	user   store.User    // GetUser's answer; UpdateUser applies the change to it
	users  []store.User  // ListUsers' page; every user SearchUsers searches
	events []store.Event // ListEvents' page
	more   bool          // a listed page has a successor
	err    error         // when set, every call fails with it
}

// storeCall is one recorded call: the method and its arguments.
type storeCall struct {
	method    string
	id        string            // GetUser, UpdateUser, DeleteUser
	ifVersion int64             // DeleteUser (UpdateUser's is in change)
	user      store.User        // CreateUser
	change    store.UserChange  // UpdateUser
	trail     []store.Event     // mutations
	page      store.Page        // ListUsers
	filter    store.EventFilter // ListEvents
	criteria  store.Criteria    // SearchUsers (its page in page)
}

// testCursorKey is the fake database's cursor key.
var testCursorKey = []byte("0123456789abcdef0123456789abcdef")

// storedAt is when the fake says it wrote a user.
var storedAt = time.Date(2026, 11, 28, 13, 2, 5, 0, time.UTC)

func (f *fakeStore) CursorKey(context.Context) ([]byte, error) { return testCursorKey, nil }

func (f *fakeStore) CreateUser(_ context.Context, u store.User, trail []store.Event) (store.User, error) {
	f.calls = append(f.calls, storeCall{method: "CreateUser", user: u, trail: trail})
	if f.err != nil {
		return store.User{}, f.err
	}
	u.Seq, u.Version, u.CreatedAt, u.UpdatedAt = 1, 1, storedAt, storedAt
	return u, nil
}

func (f *fakeStore) GetUser(_ context.Context, id string) (store.User, error) {
	f.calls = append(f.calls, storeCall{method: "GetUser", id: id})
	if f.err != nil {
		return store.User{}, f.err
	}
	return f.user, nil
}

func (f *fakeStore) UpdateUser(_ context.Context, id string, c store.UserChange, trail []store.Event) (store.User, error) {
	f.calls = append(f.calls, storeCall{method: "UpdateUser", id: id, change: c, trail: trail})
	if f.err != nil {
		return store.User{}, f.err
	}
	u := f.user
	if c.SetClaims {
		u.Claims = string(c.Claims)
	}
	if c.SetProvider {
		u.Provider = c.Provider
	}
	u.Version++
	return u, nil
}

func (f *fakeStore) DeleteUser(_ context.Context, id string, ifVersion int64, trail []store.Event) error {
	f.calls = append(f.calls, storeCall{method: "DeleteUser", id: id, ifVersion: ifVersion, trail: trail})
	return f.err
}

func (f *fakeStore) ListUsers(_ context.Context, p store.Page) ([]store.User, bool, error) {
	f.calls = append(f.calls, storeCall{method: "ListUsers", page: p})
	if f.err != nil {
		return nil, false, f.err
	}
	return f.users, f.more, nil
}

// SearchUsers answers from f.users by the rules of store.Criteria, so
// handler tests see what a real backend would find.
func (f *fakeStore) SearchUsers(_ context.Context, c store.Criteria, p store.Page) ([]store.User, bool, error) {
	f.calls = append(f.calls, storeCall{method: "SearchUsers", criteria: c, page: p})
	if f.err != nil {
		return nil, false, f.err
	}
	var want any
	if c.Claims != nil {
		if err := json.Unmarshal(c.Claims, &want); err != nil {
			return nil, false, fmt.Errorf("fake: criteria claims: %w", err)
		}
	}
	var page []store.User
	for _, u := range f.users {
		var have any
		if err := json.Unmarshal([]byte(u.Claims), &have); err != nil {
			return nil, false, fmt.Errorf("fake: user claims: %w", err)
		}
		if u.Seq <= p.AfterSeq || c.Claims != nil && !contains(have, want) || !linkMatches(u.Provider, c) {
			continue
		}
		if len(page) == p.Limit {
			return page, true, nil
		}
		page = append(page, u)
	}
	return page, false, nil
}

// contains is the claims rule of store.Criteria on decoded JSON: objects
// by containment, everything else (arrays too) by equality; json gives
// every number as a float64, so 1 equals 1.0 and not "1".
func contains(have, want any) bool {
	w, ok := want.(map[string]any)
	if !ok {
		return reflect.DeepEqual(have, want)
	}
	h, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range w {
		hv, ok := h[k]
		if !ok || !contains(hv, wv) {
			return false
		}
	}
	return true
}

func linkMatches(l *store.ProviderLink, c store.Criteria) bool {
	if c.ProviderID == "" && c.SubjectID == "" && c.URL == "" {
		return true
	}
	return l != nil && (c.ProviderID == "" || c.ProviderID == l.ProviderID) &&
		(c.SubjectID == "" || c.SubjectID == l.SubjectID) && (c.URL == "" || c.URL == l.URL)
}

func (f *fakeStore) ListEvents(_ context.Context, ef store.EventFilter) ([]store.Event, bool, error) {
	f.calls = append(f.calls, storeCall{method: "ListEvents", filter: ef})
	if f.err != nil {
		return nil, false, f.err
	}
	return f.events, f.more, nil
}

// only returns the one call the handler made, failing unless it made
// exactly one, to method.
func (f *fakeStore) only(t *testing.T, method string) storeCall {
	t.Helper()
	if len(f.calls) != 1 || f.calls[0].method != method {
		t.Fatalf("store calls %v, want one %s", f.methods(), method)
	}
	return f.calls[0]
}

// none fails if the handler reached the store.
func (f *fakeStore) none(t *testing.T) {
	t.Helper()
	if len(f.calls) != 0 {
		t.Fatalf("store calls %v, want none", f.methods())
	}
}

func (f *fakeStore) methods() []string {
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.method
	}
	return out
}

// newTestUsers returns the service over a fresh fake store.
func newTestUsers(t *testing.T, limits Limits) (*Users, *fakeStore) {
	t.Helper()
	f := &fakeStore{}
	s, err := NewUsers(t.Context(), f, limits)
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// nopSink takes the asynchronous events of a call and drops them: the
// handler tests look at what reaches the store.
type nopSink struct{}

func (nopSink) Start(context.Context, store.Event) error { return nil }
func (nopSink) End(*store.Event)                         {}
func (nopSink) Committed(string)                         {}

// serve runs a handler behind two stages of the server's chain, in its
// order: analytic events (so a mutation has a trail to hand the store),
// then error mapping. It returns the response, or the status the client
// would get.
func serve[Req, Resp any](t *testing.T, method string, h func(context.Context, Req) (Resp, error), req Req) (Resp, *status.Status) {
	t.Helper()
	resp, st, _ := serveMD(t, nil, method, h, req)
	return resp, st
}

// serveMD is serve for a call with request metadata md; it also returns
// the header metadata the handler set.
func serveMD[Req, Resp any](t *testing.T, md metadata.MD, method string, h func(context.Context, Req) (Resp, error), req Req) (Resp, *status.Status, metadata.MD) {
	t.Helper()
	info := &grpc.UnaryServerInfo{FullMethod: method}
	mapping := ErrorMapping(slog.New(slog.DiscardHandler))
	handler := func(ctx context.Context, req any) (any, error) {
		return mapping(ctx, req, info, func(ctx context.Context, req any) (any, error) { return h(ctx, req.(Req)) })
	}
	stream := &headerStream{method: method}
	ctx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(t.Context(), md), stream)
	resp, err := events.NewRecorder(EventOps, nopSink{}).UnaryServerInterceptor()(ctx, req, info, handler)
	if err != nil {
		var zero Resp
		return zero, status.Convert(err), stream.header
	}
	return resp.(Resp), nil, stream.header
}

// headerStream stands in for the server's transport stream of a call: it
// keeps the header metadata the handler sets.
type headerStream struct {
	method string
	header metadata.MD
}

func (s *headerStream) Method() string { return s.method }
func (s *headerStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *headerStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *headerStream) SetTrailer(metadata.MD) error    { return nil }

// wantOK fails the test when the call failed.
func wantOK(t *testing.T, st *status.Status) {
	t.Helper()
	if st != nil {
		t.Fatalf("status %v %q, want OK", st.Code(), st.Message())
	}
}

// wantViolations checks that st is INVALID_ARGUMENT with field violations
// on exactly these fields, in this order.
func wantViolations(t *testing.T, st *status.Status, fields ...string) {
	t.Helper()
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("status %v %q, want INVALID_ARGUMENT", st.Code(), st.Message())
	}
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetField())
			}
		}
	}
	if !slices.Equal(got, fields) {
		t.Fatalf("violations on %q, want %q", got, fields)
	}
}

// wantTrail checks that a mutation handed the store its START and its
// SUCCESS naming userID.
func wantTrail(t *testing.T, trail []store.Event, op, userID string) {
	t.Helper()
	if len(trail) != 2 || trail[0].Type != op+events.Start || trail[1].Type != op+events.Success {
		t.Fatalf("trail %v, want %s START and SUCCESS", types(trail), op)
	}
	var meta map[string]any
	if err := json.Unmarshal(trail[1].Metadata, &meta); err != nil || meta[events.KeyUserID] != userID {
		t.Fatalf("SUCCESS metadata %s, want userId %s", trail[1].Metadata, userID)
	}
}

func types(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// describeChange prints a UserChange for comparison: each part is "keep"
// or its new value ("unlink" for no provider).
func describeChange(c store.UserChange) string {
	claims, provider := "keep", "keep"
	if c.SetClaims {
		claims = string(c.Claims)
	}
	if c.SetProvider {
		provider = "unlink"
		if p := c.Provider; p != nil {
			provider = fmt.Sprintf("%s|%s|%s", p.ProviderID, p.URL, p.SubjectID)
		}
	}
	return "claims=" + claims + " provider=" + provider
}
