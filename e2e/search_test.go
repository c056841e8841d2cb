package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// searchPage is a REST search's body.
type searchPage struct {
	Data []struct {
		ID     string         `json:"id"`
		Claims map[string]any `json:"claims"`
	} `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

func searchREST(t *testing.T, s *server, body string) searchPage {
	t.Helper()
	r := s.do(t, "POST", "/v1/users/search", body)
	if r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", body, r.Status, r.Body)
	}
	var p searchPage
	if err := json.Unmarshal(r.Body, &p); err != nil || p.Data == nil {
		t.Fatalf("search body %s: %v (data must be an array)", r.Body, err)
	}
	return p
}

func (p searchPage) ids() []string {
	var out []string
	for _, u := range p.Data {
		out = append(out, u.ID)
	}
	return out
}

func TestSearchREST(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	tag := randomHex(8) // a claim value these users alone hold
	nz := createUser(t, s, `{"claims":{"tag":"`+tag+`","address":{"country":"NZ","city":"Wellington"},"n":1,"a.b":true},"authenticationProvider":`+provider("sub-"+tag)+`}`)["id"].(string)
	au := createUser(t, s, `{"claims":{"tag":"`+tag+`","address":{"country":"AU"},"n":"1","a":{"b":true}}}`)["id"].(string)
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"claims":{"tag":"` + tag + `"}}`, []string{nz, au}},
		{`{"claims":{"tag":"` + tag + `","address":{"country":"NZ"}}}`, []string{nz}},
		{`{"claims":{"tag":"` + tag + `","address":{}}}`, []string{nz, au}},
		{`{"claims":{"tag":"` + tag + `","n":1}}`, []string{nz}},
		{`{"claims":{"tag":"` + tag + `","n":"1"}}`, []string{au}},
		{`{"claims":{"tag":"` + tag + `","a.b":true}}`, []string{nz}},
		{`{"claims":{"tag":"` + tag + `","a":{"b":true}}}`, []string{au}},
		{`{"claims":{"tag":"` + tag + `"},"authenticationProvider":{"subjectId":"sub-` + tag + `"}}`, []string{nz}},
		{`{"authenticationProvider":{"subjectId":"sub-` + tag + `","providerId":"` + strings.ToUpper(providerA) + `"}}`, []string{nz}},
		{`{"claims":{"tag":"` + tag + `"},"authenticationProvider":{"url":"https://nowhere.example"}}`, nil},
	} {
		if got := searchREST(t, s, tc.body).ids(); !slices.Equal(got, tc.want) {
			t.Errorf("search %s: %v, want %v", tc.body, got, tc.want)
		}
	}

	// Paging: the cursor continues the same criteria, in any spelling.
	for range 3 {
		createUser(t, s, `{"claims":{"tag":"`+tag+`"}}`)
	}
	var all []string
	body := `{"claims":{"tag":"` + tag + `"},"limit":2}`
	p := searchREST(t, s, body)
	pages := 1
	for all = p.ids(); p.NextCursor != nil; pages++ {
		p = searchREST(t, s, `{"limit": 2, "cursor":"`+*p.NextCursor+`", "claims": {"tag": "`+tag+`"}}`)
		all = append(all, p.ids()...)
	}
	if len(all) != 5 || pages != 3 || all[0] != nz || all[1] != au {
		t.Fatalf("paged %v in %d pages, want 5 users in 3", all, pages)
	}
	first := searchREST(t, s, body)

	// Bad input: the contract's 400s, located in the body.
	for _, tc := range []struct {
		body    string
		details []string
	}{
		{`{"claims":{"tag":"other"},"cursor":"` + *first.NextCursor + `"}`, []string{"cursor@body"}},
		{`{"claims":{"tag":"` + tag + `"},"limit":2,"cursor":"not-a-cursor"}`, []string{"cursor@body"}},
		{`{"limit":0}`, []string{"limit@body"}},
		{`{"limit":1001}`, []string{"limit@body"}},
		{`{"nope":1}`, []string{"nope@body"}},
		{`{"authenticationProvider":{"providerId":"x","nope":1}}`, []string{"authenticationProvider.nope@body"}},
		{`{"claims":[1]}`, []string{"claims@body"}},
		{`{"claims":"x"}`, []string{"claims@body"}},
		{`{"claims":{"n":9007199254740993}}`, []string{"claims.n@body"}},
		{`{"authenticationProvider":{"providerId":"not-a-uuid","subjectId":""}}`, []string{"authenticationProvider.providerId@body"}},
	} {
		wantError(t, s.do(t, "POST", "/v1/users/search", tc.body), 400, "BadRequest", tc.details...)
	}
	// A ListUsers cursor is not a search cursor, and the other way round.
	list := s.do(t, "GET", "/v1/users?limit=1", "").JSON(t)
	wantError(t, s.do(t, "POST", "/v1/users/search", `{"cursor":"`+list["nextCursor"].(string)+`"}`), 400, "BadRequest", "cursor@body")
	wantError(t, s.do(t, "GET", "/v1/users?cursor="+*first.NextCursor, ""), 400, "BadRequest", "cursor@query")

	// HTTP syntax as for every body.
	wantError(t, s.do(t, "POST", "/v1/users/search", `{}`, "Content-Type", "text/plain"), 415, "UnsupportedMediaType")
	wantError(t, s.do(t, "POST", "/v1/users/search", `{"claims":{"x":"`+strings.Repeat("x", 70<<10)+`"}}`), 413, "PayloadTooLarge")
	wantError(t, s.do(t, "POST", "/v1/users/search", `{"limit":1,"limit":2}`), 400, "BadRequest")
	// An empty body is {}: everyone.
	if r := s.do(t, "POST", "/v1/users/search", "", "Content-Type", "application/json"); r.Status != http.StatusOK {
		t.Fatalf("empty body: %d %s", r.Status, r.Body)
	}

	// Other methods on the path: 405, never a GetUser of id "search".
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		r := s.do(t, m, "/v1/users/search", "")
		wantError(t, r, 405, "MethodNotAllowed")
		if allow := r.Header.Get("Allow"); allow != "POST" {
			t.Errorf("%s /v1/users/search: Allow %q, want POST", m, allow)
		}
	}
}

func TestSearchGRPC(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.grpc()
	tag := randomHex(8)
	var ids []string
	for i := range 3 {
		claims, err := structpb.NewStruct(map[string]any{"tag": tag, "i": float64(i % 2)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.GetUser().GetId())
	}
	criteria := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(`{"tag":"`+tag+`","i":0}`), criteria); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	resp, err := c.SearchUsers(t.Context(), &usersv1.SearchUsersRequest{Claims: criteria, Limit: &one})
	if err != nil || len(resp.GetData()) != 1 || resp.GetData()[0].GetId() != ids[0] || resp.NextCursor == nil {
		t.Fatalf("first page %v, %v; want user 0 and a cursor", resp, err)
	}
	last, err := c.SearchUsers(t.Context(), &usersv1.SearchUsersRequest{Claims: criteria, Limit: &one, Cursor: resp.GetNextCursor()})
	if err != nil || len(last.GetData()) != 1 || last.GetData()[0].GetId() != ids[2] || last.NextCursor != nil {
		t.Fatalf("last page %v, %v; want user 2 and no cursor", last, err)
	}
	_, err = c.SearchUsers(t.Context(), &usersv1.SearchUsersRequest{Cursor: resp.GetNextCursor()})
	wantViolations(t, err, "cursor")
	zero := int32(0)
	_, err = c.SearchUsers(t.Context(), &usersv1.SearchUsersRequest{Limit: &zero,
		AuthenticationProvider: &usersv1.ProviderCriteria{ProviderId: "x"}})
	wantViolations(t, err, "limit", "authentication_provider.provider_id")
}

// A search leaves START and SUCCESS with the limit and the count found,
// and nothing of the criteria; the auditor may not search.
func TestSearchEventsAndRoles(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	secret := "secret-" + randomHex(8)
	createUser(t, s, `{"claims":{"k":"`+secret+`"}}`)
	auditor, auditorSubject := evToken(t, "aud", "auditor")
	issuer, issuerSubject := evToken(t, "iss", "issuer")

	rid := evRID("search")
	r := evDo(t, s, issuer, rid, "POST", "/v1/users/search", `{"claims":{"k":"`+secret+`"},"limit":7}`)
	if r.Status != http.StatusOK {
		t.Fatalf("issuer search: %d %s", r.Status, r.Body)
	}
	evs := evPoll(t, s, auditor, rid, 2)
	startEv, end := evWantPair(t, evs, rid, issuerSubject, "USER_SEARCH", "SUCCESS")
	evWantMeta(t, end, map[string]any{"limit": 7, "entriesCount": 1})
	evWantMetaWithin(t, startEv, map[string]any{"limit": 7})
	raw := evDo(t, s, auditor, "", "GET", "/v1/events?limit=1000&requestIds="+rid, "")
	if raw.Status != http.StatusOK {
		t.Fatalf("listing the search's events: %d %s", raw.Status, raw.Body)
	}
	if strings.Contains(string(raw.Body), secret) {
		t.Fatalf("the events carry the criteria: %s", raw.Body)
	}

	rid = evRID("search-bad")
	wantError(t, evDo(t, s, issuer, rid, "POST", "/v1/users/search", `{"limit":0}`), 400, "BadRequest", "limit@body")
	_, fail := evWantPair(t, evPoll(t, s, auditor, rid, 2), rid, issuerSubject, "USER_SEARCH", "FAIL")
	evWantMetaWithin(t, fail, map[string]any{"code": "BadRequest", "limit": 0})

	rid = evRID("search-auditor")
	wantError(t, evDo(t, s, auditor, rid, "POST", "/v1/users/search", `{}`), 403, "Forbidden")
	_, fail = evWantPair(t, evPoll(t, s, auditor, rid, 2), rid, auditorSubject, "USER_SEARCH", "FAIL")
	evWantMetaWithin(t, fail, map[string]any{"code": "Forbidden"})
}

// checkSearchAgrees checks, on a server started after a kill -9 in the
// middle of writes (checkCrashWorkload), that the claims index and the
// users agree: searching for each v the users hold finds exactly the users
// holding it.
func checkSearchAgrees(t *testing.T, s *server) {
	t.Helper()
	byV := map[string][]string{}
	limit := int32(1000)
	req := &usersv1.ListUsersRequest{Limit: &limit}
	for {
		page, err := s.grpc().ListUsers(t.Context(), req)
		if err != nil {
			t.Fatalf("list after the crash: %v", err)
		}
		for _, u := range page.GetData() {
			if v, ok := u.GetClaims().GetFields()["v"]; ok {
				key := fmt.Sprint(v.GetNumberValue())
				byV[key] = append(byV[key], u.GetId())
			}
		}
		if page.NextCursor == nil {
			break
		}
		req.Cursor = page.GetNextCursor()
	}
	if len(byV) == 0 {
		t.Fatal("no users with a v after the crash")
	}
	for v, want := range byV {
		p := searchREST(t, s, `{"claims":{"v":`+v+`},"limit":1000}`)
		if p.NextCursor != nil {
			t.Fatalf("v=%s: more than 1000 users", v)
		}
		if got := p.ids(); !slices.Equal(got, want) {
			t.Errorf("search v=%s found %v, want %v", v, got, want)
		}
	}
}
