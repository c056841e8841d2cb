package service

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/store"
)

func jsonStruct(t *testing.T, js string) *structpb.Struct {
	t.Helper()
	s := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(js), s); err != nil {
		t.Fatalf("struct %s: %v", js, err)
	}
	return s
}

func searchReq(t *testing.T, claims string, p *usersv1.ProviderCriteria) *usersv1.SearchUsersRequest {
	t.Helper()
	req := &usersv1.SearchUsersRequest{AuthenticationProvider: p}
	if claims != "" {
		req.Claims = jsonStruct(t, claims)
	}
	return req
}

// The handler hands the store the validated, canonical criteria.
func TestSearchUsersCriteria(t *testing.T) {
	pid := "0190A6D2-0000-7000-8000-000000000001"
	for _, tc := range []struct {
		name   string
		req    *usersv1.SearchUsersRequest
		want   store.Criteria
		fields []string // violations; the store must not be called
	}{
		{name: "none", req: &usersv1.SearchUsersRequest{}, want: store.Criteria{}},
		{name: "empty claims", req: searchReq(t, `{}`, nil), want: store.Criteria{Claims: []byte(`{}`)}},
		{name: "claims canonical", req: searchReq(t, `{"b":1.0,"a":{"y":"z","x":[true,null]}}`, nil),
			want: store.Criteria{Claims: []byte(`{"a":{"x":[true,null],"y":"z"},"b":1}`)}},
		{name: "provider fields canonical", req: searchReq(t, "", &usersv1.ProviderCriteria{ProviderId: pid, SubjectId: "s", Url: "https://idp.example"}),
			want: store.Criteria{ProviderID: strings.ToLower(pid), SubjectID: "s", URL: "https://idp.example"}},
		{name: "subject only", req: searchReq(t, "", &usersv1.ProviderCriteria{SubjectId: "s"}), want: store.Criteria{SubjectID: "s"}},
		{name: "empty provider", req: searchReq(t, "", &usersv1.ProviderCriteria{}), want: store.Criteria{}},
		{name: "bad provider fields",
			req:    searchReq(t, "", &usersv1.ProviderCriteria{ProviderId: "nope", SubjectId: "a\x01", Url: "ftp://x"}),
			fields: []string{"authentication_provider.provider_id", "authentication_provider.url", "authentication_provider.subject_id"}},
		{name: "long subject and url",
			req:    searchReq(t, "", &usersv1.ProviderCriteria{SubjectId: strings.Repeat("s", 257), Url: "https://x/" + strings.Repeat("u", 2048)}),
			fields: []string{"authentication_provider.url", "authentication_provider.subject_id"}},
		{name: "claims limits", req: searchReq(t, `{"a":{"":1},"n":1e300,"s":"\u0000"}`, nil),
			fields: []string{"claims.a", "claims.n", "claims.s"}},
		{name: "claims too deep", req: searchReq(t, `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":1}}}}}}}}}}}`, nil),
			fields: []string{"claims.a.b.c.d.e.f.g.h.i.j"}},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			_, st := serve(t, usersv1.UserService_SearchUsers_FullMethodName, s.SearchUsers, tc.req)
			if tc.fields != nil {
				wantViolations(t, st, tc.fields...)
				f.none(t)
				return
			}
			wantOK(t, st)
			call := f.only(t, "SearchUsers")
			if got := call.criteria; string(got.Claims) != string(tc.want.Claims) || (got.Claims == nil) != (tc.want.Claims == nil) ||
				got.ProviderID != tc.want.ProviderID || got.SubjectID != tc.want.SubjectID || got.URL != tc.want.URL {
				t.Fatalf("store got criteria %+v (claims %s), want %+v (claims %s)", got, got.Claims, tc.want, tc.want.Claims)
			}
			if call.page != (store.Page{Limit: 100}) {
				t.Fatalf("store got page %+v, want the default", call.page)
			}
		})
	}
}

// A search finds what the criteria select (the fake store applies the
// contract's rules), page by page, and the cursor continues only the
// search it was issued for.
func TestSearchUsersPagesAndCursor(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	for i := range 5 {
		f.users = append(f.users, store.User{ID: fmt.Sprintf("0190a6d2-0000-7000-8000-00000000000%d", i), Seq: int64(10 + i),
			Claims: fmt.Sprintf(`{"g":%d,"s":"%d"}`, i%2, i%2)})
	}
	i32 := func(v int32) *int32 { return &v }
	search := func(claims, cursor string, limit int32) (*usersv1.SearchUsersResponse, []string) {
		t.Helper()
		req := searchReq(t, claims, nil)
		req.Cursor, req.Limit = cursor, i32(limit)
		resp, st := serve(t, usersv1.UserService_SearchUsers_FullMethodName, s.SearchUsers, req)
		wantOK(t, st)
		var ids []string
		for _, u := range resp.GetData() {
			ids = append(ids, u.GetId()[len(u.GetId())-1:])
		}
		return resp, ids
	}
	resp, ids := search(`{"g":0}`, "", 2)
	if !slices.Equal(ids, []string{"0", "2"}) || resp.NextCursor == nil {
		t.Fatalf("first page %v (next %v), want users 0 and 2 and a cursor", ids, resp.NextCursor)
	}
	// The same criteria spelled otherwise are the same search.
	last, ids := search(`{ "g" : 0.0 }`, resp.GetNextCursor(), 2)
	if !slices.Equal(ids, []string{"4"}) || last.NextCursor != nil {
		t.Fatalf("last page %v (next %v), want user 4 and no cursor", ids, last.NextCursor)
	}
	if _, ids = search(`{"s":"0"}`, "", 10); !slices.Equal(ids, []string{"0", "2", "4"}) {
		t.Fatalf(`"0" found %v`, ids)
	}
	if _, ids = search(`{"s":0}`, "", 10); ids != nil {
		t.Fatalf(`0 found %v, want no user with the string "0"`, ids)
	}

	f.calls = nil
	listCursor := usersCursor(s, 11)
	digest := criteriaDigest(store.Criteria{Claims: []byte(`{"g":0}`)})
	for name, req := range map[string]*usersv1.SearchUsersRequest{
		"other claims":     {Claims: jsonStruct(t, `{"g":1}`), Cursor: resp.GetNextCursor()},
		"no claims":        {Cursor: resp.GetNextCursor()},
		"added provider":   {Claims: jsonStruct(t, `{"g":0}`), AuthenticationProvider: &usersv1.ProviderCriteria{SubjectId: "s"}, Cursor: resp.GetNextCursor()},
		"ListUsers cursor": {Claims: jsonStruct(t, `{"g":0}`), Cursor: listCursor},
		"garbage":          {Claims: jsonStruct(t, `{"g":0}`), Cursor: "x"},
		"short position":   {Claims: jsonStruct(t, `{"g":0}`), Cursor: s.cursors.encode(cursorSearchUsers, digest[:])},
		"negative seq": {Claims: jsonStruct(t, `{"g":0}`),
			Cursor: s.cursors.encode(cursorSearchUsers, binary.BigEndian.AppendUint64(digest[:], 1<<63))},
	} {
		_, st := serve(t, usersv1.UserService_SearchUsers_FullMethodName, s.SearchUsers, req)
		t.Run("case="+name, func(t *testing.T) { wantViolations(t, st, "cursor") })
	}
	// A search cursor does not continue ListUsers either.
	_, st := serve(t, usersv1.UserService_ListUsers_FullMethodName, s.ListUsers, &usersv1.ListUsersRequest{Cursor: resp.GetNextCursor()})
	wantViolations(t, st, "cursor")
	f.none(t)
}

func TestSearchUsersLimit(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	for _, limit := range []int32{0, -1, 1001} {
		s, f := newTestUsers(t, DefaultLimits)
		_, st := serve(t, usersv1.UserService_SearchUsers_FullMethodName, s.SearchUsers, &usersv1.SearchUsersRequest{Limit: i32(limit)})
		wantViolations(t, st, "limit")
		f.none(t)
	}
	for _, limit := range []int32{1, 1000} {
		s, f := newTestUsers(t, DefaultLimits)
		_, st := serve(t, usersv1.UserService_SearchUsers_FullMethodName, s.SearchUsers, &usersv1.SearchUsersRequest{Limit: i32(limit)})
		wantOK(t, st)
		if got := f.only(t, "SearchUsers").page.Limit; got != int(limit) {
			t.Errorf("limit %d reached the store as %d", limit, got)
		}
	}
}

// Distinct criteria have distinct digests, also where a naive
// concatenation would run parts together.
func TestCriteriaDigest(t *testing.T) {
	seen := map[[sha256.Size]byte]store.Criteria{}
	for _, c := range []store.Criteria{
		{}, {Claims: []byte(`{"a":1}`)}, {SubjectID: "ab"}, {SubjectID: "a", URL: "b"}, {ProviderID: "a", SubjectID: "b"},
		{URL: "ab"}, {ProviderID: "ab"},
	} {
		d := criteriaDigest(c)
		if prev, ok := seen[d]; ok {
			t.Errorf("criteria %+v and %+v share a digest", prev, c)
		}
		seen[d] = c
	}
	if criteriaDigest(store.Criteria{}) != criteriaDigest(store.Criteria{Claims: []byte(`{}`)}) {
		t.Error("no claims and {} (both: everyone) have different digests")
	}
}
