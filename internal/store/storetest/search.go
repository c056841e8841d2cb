package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// searchCases are the contract of SearchUsers: the matching rules of
// store.Criteria, the index kept exact through every write, and keyset
// paging.
var searchCases = []testCase{
	{"search_criteria", testSearchCriteria},
	{"search_provider_and_claims", testSearchProvider},
	{"search_index_follows_writes", testSearchFollowsWrites},
	{"search_bulk_load", testSearchBulkLoad},
	{"search_paging", testSearchPaging},
	{"search_paging_under_churn", testSearchUnderChurn},
}

// searchFixture is a store's users by name and their claims. Every
// criterion below is run against all of them, so a false match anywhere
// fails.
var searchFixture = []struct{ name, claims string }{
	{"num1", `{"n":1}`},
	{"num1.0", `{"n":1.0}`},
	{"num2", `{"n":2}`},
	{"str1", `{"n":"1"}`},
	{"true", `{"b":true}`},
	{"false", `{"b":false}`},
	{"strtrue", `{"b":"true"}`},
	{"null", `{"z":null}`},
	{"strnull", `{"z":"null"}`},
	{"empty", `{}`},
	{"nested", `{"a":{"b":1}}`},
	{"dotted", `{"a.b":1}`},
	{"bracket", `{"x[0]":1}`},
	{"array_x", `{"x":[1]}`},
	{"meta", `{"$where":1,"k'":2,"q\"k":3,"p%":4,"u_":5,"back\\":6,"$":7}`},
	{"meta_decoy", `{"$wherex":1,"k":2,"qk":3,"px":4,"ua":5,"back":6}`},
	{"unicode", `{"é":"ü","日本":"語 😀"}`},
	{"tags_ab", `{"tags":["a","b"]}`},
	{"tags_abc", `{"tags":["a","b","c"]}`},
	{"tags_ba", `{"tags":["b","a"]}`},
	{"tags_empty", `{"tags":[]}`},
	{"tags_objs", `{"tags":[{"k":1},[2]]}`},
	{"addr_nz", `{"address":{"city":"Wellington","country":"NZ"},"age":30}`},
	{"addr_au", `{"address":{"country":"AU","geo":{"lat":1.5}},"age":30}`},
	{"addr_empty", `{"address":{}}`},
	{"addr_str", `{"address":"NZ"}`},
}

func testSearchCriteria(t *testing.T, s store.Store, _ *Clock) {
	byName := map[string]store.User{}
	var all []string
	for _, f := range searchFixture {
		byName[f.name] = mustCreate(t, s, f.claims, nil)
		all = append(all, f.name)
	}
	for _, tc := range []struct {
		claims string
		want   []string
	}{
		// Numbers by value, apart from strings of the same digits.
		{`{"n":1}`, []string{"num1", "num1.0"}},
		{`{"n":1.0}`, []string{"num1", "num1.0"}},
		{`{"n":1e0}`, []string{"num1", "num1.0"}},
		{`{"n":"1"}`, []string{"str1"}},
		{`{"n":3}`, nil},
		// Booleans and null are their own types.
		{`{"b":true}`, []string{"true"}},
		{`{"b":false}`, []string{"false"}},
		{`{"b":"true"}`, []string{"strtrue"}},
		{`{"b":1}`, nil},
		{`{"z":null}`, []string{"null"}},
		{`{"z":"null"}`, []string{"strnull"}},
		// Nested objects by containment; a dot in a key is a character.
		{`{"a":{"b":1}}`, []string{"nested"}},
		{`{"a.b":1}`, []string{"dotted"}},
		{`{"a":{}}`, []string{"nested"}},
		{`{"a":{"b":1,"c":2}}`, nil},
		{`{"address":{"country":"NZ"}}`, []string{"addr_nz"}},
		{`{"address":{"country":"NZ"},"age":30}`, []string{"addr_nz"}},
		{`{"address":{"geo":{"lat":1.5}}}`, []string{"addr_au"}},
		{`{"address":{"geo":{}}}`, []string{"addr_au"}},
		{`{"address":{}}`, []string{"addr_nz", "addr_au", "addr_empty"}},
		{`{"address":"NZ"}`, []string{"addr_str"}},
		{`{"age":30}`, []string{"addr_nz", "addr_au"}},
		// Brackets, $, quotes, backslashes and LIKE wildcards are data.
		{`{"x[0]":1}`, []string{"bracket"}},
		{`{"x":[1]}`, []string{"array_x"}},
		{`{"$where":1}`, []string{"meta"}},
		{`{"k'":2}`, []string{"meta"}},
		{`{"q\"k":3}`, []string{"meta"}},
		{`{"p%":4}`, []string{"meta"}},
		{`{"u_":5}`, []string{"meta"}},
		{`{"back\\":6}`, []string{"meta"}},
		{`{"$":7}`, []string{"meta"}},
		{`{"p%":4,"u_":5,"$where":1}`, []string{"meta"}},
		// Unicode keys and values.
		{`{"é":"ü"}`, []string{"unicode"}},
		{`{"日本":"語 😀"}`, []string{"unicode"}},
		{`{"é":"u"}`, nil},
		// Arrays only when equal: not a superset, not another order.
		{`{"tags":["a","b"]}`, []string{"tags_ab"}},
		{`{"tags":["a"]}`, nil},
		{`{"tags":["b","a"]}`, []string{"tags_ba"}},
		{`{"tags":[]}`, []string{"tags_empty"}},
		{`{"tags":[{"k":1},[2]]}`, []string{"tags_objs"}},
		{`{"tags":"a"}`, nil},
		// Every criterion must hold.
		{`{"n":1,"b":true}`, nil},
		// No claims criterion, or {}, selects everyone.
		{`{}`, all},
	} {
		got := searchNames(t, s, byName, store.Criteria{Claims: []byte(tc.claims)})
		if !slices.Equal(got, tc.want) {
			t.Errorf("claims %s: found %v, want %v", tc.claims, got, tc.want)
		}
	}
	if got := searchNames(t, s, byName, store.Criteria{}); !slices.Equal(got, all) {
		t.Errorf("no criteria: found %v, want everyone", got)
	}
	// Claims criteria that are not an object are an error, not "no
	// claims criterion": they would otherwise select everyone.
	for _, claims := range []string{`[1]`, `1`, `"x"`, `null`, `{`} {
		if users, _, err := s.SearchUsers(t.Context(), store.Criteria{Claims: []byte(claims)}, store.Page{Limit: 10}); err == nil {
			t.Errorf("claims criteria %s: found %d users, want an error", claims, len(users))
		}
	}
	if _, _, err := s.SearchUsers(t.Context(), store.Criteria{}, store.Page{Limit: -1}); err == nil {
		t.Error("a negative limit: no error")
	}
}

func testSearchProvider(t *testing.T, s store.Store, _ *Clock) {
	p1, p2 := uuid.NewString(), uuid.NewString()
	byName := map[string]store.User{
		"l1":       mustCreate(t, s, `{"role":"x"}`, &store.ProviderLink{ProviderID: p1, SubjectID: "s1", URL: "https://one.example"}),
		"l2":       mustCreate(t, s, `{"role":"x"}`, &store.ProviderLink{ProviderID: p1, SubjectID: "s2", URL: "https://two.example"}),
		"l3":       mustCreate(t, s, `{"role":"y"}`, &store.ProviderLink{ProviderID: p2, SubjectID: "s1", URL: "https://one.example"}),
		"unlinked": mustCreate(t, s, `{"role":"x"}`, nil),
	}
	for _, tc := range []struct {
		c    store.Criteria
		want []string
	}{
		{store.Criteria{ProviderID: p1}, []string{"l1", "l2"}},
		{store.Criteria{SubjectID: "s1"}, []string{"l1", "l3"}},
		{store.Criteria{URL: "https://one.example"}, []string{"l1", "l3"}},
		{store.Criteria{URL: "https://one.example/"}, nil},
		{store.Criteria{ProviderID: p1, SubjectID: "s1"}, []string{"l1"}},
		{store.Criteria{ProviderID: p1, SubjectID: "s1", URL: "https://one.example"}, []string{"l1"}},
		{store.Criteria{ProviderID: p1, SubjectID: "s1", URL: "https://two.example"}, nil},
		{store.Criteria{ProviderID: p2, URL: "https://one.example"}, []string{"l3"}},
		{store.Criteria{SubjectID: "s%"}, nil},
		{store.Criteria{ProviderID: uuid.NewString()}, nil},
		// AND of claims and provider.
		{store.Criteria{Claims: []byte(`{"role":"x"}`), SubjectID: "s1"}, []string{"l1"}},
		{store.Criteria{Claims: []byte(`{"role":"x"}`), ProviderID: p1, SubjectID: "s2"}, []string{"l2"}},
		{store.Criteria{Claims: []byte(`{"role":"y"}`), ProviderID: p1}, nil},
		{store.Criteria{Claims: []byte(`{"role":"x"}`)}, []string{"l1", "l2", "unlinked"}},
		{store.Criteria{Claims: []byte(`{}`), URL: "https://two.example"}, []string{"l2"}},
	} {
		if got := searchNames(t, s, byName, tc.c); !slices.Equal(got, tc.want) {
			t.Errorf("criteria %+v (claims %s): found %v, want %v", tc.c, tc.c.Claims, got, tc.want)
		}
	}
}

// The index follows every write: claims replaced, cleared, left alone by
// a provider change, and the user deleted.
func testSearchFollowsWrites(t *testing.T, s store.Store, _ *Clock) {
	u := mustCreate(t, s, `{"k":"v1","o":{"p":1}}`, nil)
	other := mustCreate(t, s, `{"k":"v2"}`, nil)
	byName := map[string]store.User{"u": u, "other": other}
	check := func(step, claims string, want ...string) {
		t.Helper()
		if got := searchNames(t, s, byName, store.Criteria{Claims: []byte(claims)}); !slices.Equal(got, want) {
			t.Errorf("%s: claims %s found %v, want %v", step, claims, got, want)
		}
	}
	check("created", `{"k":"v1"}`, "u")
	check("created", `{"o":{"p":1}}`, "u")
	mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"k":"v2","o":{"q":true}}`)})
	check("replaced", `{"k":"v1"}`)
	check("replaced", `{"o":{"p":1}}`)
	check("replaced", `{"k":"v2"}`, "u", "other")
	check("replaced", `{"o":{"q":true}}`, "u")
	mustUpdate(t, s, u.ID, store.UserChange{SetProvider: true, Provider: newLink()})
	check("provider changed", `{"o":{"q":true}}`, "u")
	mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{}`)})
	check("cleared", `{"k":"v2"}`, "other")
	check("cleared", `{"o":{}}`)
	check("cleared", `{}`, "u", "other")
	mustUpdate(t, s, u.ID, store.UserChange{SetClaims: true, Claims: []byte(`{"k":"v3"}`)})
	check("set again", `{"k":"v3"}`, "u")
	if err := s.DeleteUser(t.Context(), u.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	check("deleted", `{"k":"v3"}`)
	check("deleted", `{}`, "other")
}

// Users a bulk load inserts are searchable like any other, in order after
// those already there.
func testSearchBulkLoad(t *testing.T, s store.Store, clock *Clock) {
	loader, ok := s.(store.BulkLoader)
	if !ok {
		t.Skip("the backend has no bulk loader")
	}
	first := mustCreate(t, s, `{"g":1}`, nil)
	var batch []store.User
	for i := range 5 {
		batch = append(batch, store.User{ID: newID(t), Claims: fmt.Sprintf(`{"g":%d,"i":%d}`, 1+i%2, i), CreatedAt: clock.Now()})
	}
	batch[4].Provider = newLink()
	if err := loader.LoadUsers(t.Context(), batch); err != nil {
		t.Fatalf("LoadUsers: %v", err)
	}
	got, _ := mustSearch(t, s, store.Criteria{Claims: []byte(`{"g":1}`)}, store.Page{Limit: 10})
	assertIDs(t, got, first.ID, batch[0].ID, batch[2].ID, batch[4].ID)
	loaded := mustGet(t, s, batch[4].ID)
	if loaded.Version != 1 || loaded.Seq <= first.Seq || !loaded.CreatedAt.Equal(batch[4].CreatedAt.Truncate(time.Millisecond)) {
		t.Errorf("loaded user %s, want version 1, seq after %d, created %v", format(loaded), first.Seq, batch[4].CreatedAt)
	}
	got, _ = mustSearch(t, s, store.Criteria{ProviderID: batch[4].Provider.ProviderID}, store.Page{Limit: 10})
	assertIDs(t, got, batch[4].ID)

	// A link already taken fails the load as it fails a create, and the
	// load's other user is not stored.
	clash := []store.User{
		{ID: newID(t), Claims: `{}`, CreatedAt: clock.Now()},
		{ID: newID(t), Claims: `{}`, CreatedAt: clock.Now(), Provider: batch[4].Provider},
	}
	if err := loader.LoadUsers(t.Context(), clash); !errors.Is(err, store.ErrProviderLinkConflict) {
		t.Errorf("LoadUsers with a taken link: %v, want ErrProviderLinkConflict", err)
	}
	if _, err := s.GetUser(t.Context(), clash[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the other user of the failed load: %v, want ErrNotFound", err)
	}
}

func testSearchPaging(t *testing.T, s store.Store, _ *Clock) {
	var want []string
	for i := range 7 {
		u := mustCreate(t, s, fmt.Sprintf(`{"g":%d}`, i%2), nil)
		if i%2 == 0 {
			want = append(want, u.ID)
		}
	}
	c := store.Criteria{Claims: []byte(`{"g":0}`)}
	for _, tc := range []struct {
		limit int
		pages []int
	}{
		{limit: 1, pages: []int{1, 1, 1, 1}},
		{limit: 2, pages: []int{2, 2}}, // exactly full: no empty trailing page
		{limit: 3, pages: []int{3, 1}},
		{limit: 4, pages: []int{4}},
	} {
		var got []string
		var after int64
		for i, size := range tc.pages {
			users, more := mustSearch(t, s, c, store.Page{Limit: tc.limit, AfterSeq: after})
			if len(users) != size || more != (i < len(tc.pages)-1) {
				t.Fatalf("limit %d, page %d: %d users, more %v; want %d, %v", tc.limit, i, len(users), more, size, i < len(tc.pages)-1)
			}
			for _, u := range users {
				after = u.Seq
				got = append(got, u.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: found %v, want %v", tc.limit, got, want)
		}
	}
	// The found form is the stored form.
	users, _ := mustSearch(t, s, c, store.Page{Limit: 1})
	assertUser(t, users[0], mustGet(t, s, want[0]))
}

// Matching users created and deleted between pages of limit 2: those
// present throughout are found once each, deleted ones not yet reached
// are gone, new ones come last, users that do not match never show.
func testSearchUnderChurn(t *testing.T, s store.Store, _ *Clock) {
	ctx := t.Context()
	c := store.Criteria{Claims: []byte(`{"team":{"name":"blue"}}`)}
	match := func() store.User { return mustCreate(t, s, `{"team":{"name":"blue","size":2}}`, nil) }
	var u []store.User
	for range 6 {
		u = append(u, match())
		mustCreate(t, s, `{"team":{"name":"red"}}`, nil)
	}
	var got []string
	var after int64
	for page := 0; ; page++ {
		users, more := mustSearch(t, s, c, store.Page{Limit: 2, AfterSeq: after})
		for _, x := range users {
			got = append(got, x.ID)
			after = x.Seq
		}
		if page == 0 {
			// One found already, one not yet reached; a new match.
			for _, gone := range []store.User{u[1], u[3]} {
				if err := s.DeleteUser(ctx, gone.ID, 0, nil); err != nil {
					t.Fatalf("DeleteUser: %v", err)
				}
			}
			u = append(u, match())
			mustCreate(t, s, `{"team":{"name":"red"}}`, nil)
		}
		if page == 1 {
			u = append(u, match())
		}
		if !more {
			break
		}
		if page > 10 {
			t.Fatal("paging does not end")
		}
	}
	want := []string{u[0].ID, u[1].ID, u[2].ID, u[4].ID, u[5].ID, u[6].ID, u[7].ID}
	if !slices.Equal(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
}

func mustSearch(t *testing.T, s store.Store, c store.Criteria, p store.Page) ([]store.User, bool) {
	t.Helper()
	users, more, err := s.SearchUsers(t.Context(), c, p)
	if err != nil {
		t.Fatalf("SearchUsers(claims %s, %+v): %v", c.Claims, p, err)
	}
	return users, more
}

// searchNames searches with c and names the users found (all of them, by
// one page), in the order found; a user not in byName fails the test.
func searchNames(t *testing.T, s store.Store, byName map[string]store.User, c store.Criteria) []string {
	t.Helper()
	users, more := mustSearch(t, s, c, store.Page{Limit: 1000})
	if more {
		t.Fatalf("more than 1000 users")
	}
	names := map[string]string{}
	for n, u := range byName {
		names[u.ID] = n
	}
	var got []string
	for _, u := range users {
		n, ok := names[u.ID]
		if !ok {
			t.Fatalf("found user %s, which the test did not create", u.ID)
		}
		got = append(got, n)
	}
	return got
}
