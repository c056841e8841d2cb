package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/storetest"
)

// search returns the ids of every user matching c, paging by 2 so that
// paging runs on every case too.
func search(t *testing.T, s *Store, c store.Criteria) []string {
	t.Helper()
	var ids []string
	var after int64
	for {
		users, more, err := s.SearchUsers(t.Context(), c, store.Page{Limit: 2, AfterSeq: after})
		if err != nil {
			t.Fatalf("SearchUsers(%s): %v", c.Claims, err)
		}
		for _, u := range users {
			if u.Seq <= after {
				t.Fatalf("SearchUsers(%s): Seq %d after %d", c.Claims, u.Seq, after)
			}
			after = u.Seq
			ids = append(ids, u.ID)
		}
		if !more {
			return ids
		}
	}
}

// The matching rules of store.Criteria.Claims, each case against every
// user: containment is not enough for arrays, types count, numbers
// compare as numbers, keys are literal.
func TestSearchClaimsSemantics(t *testing.T) {
	t.Parallel()
	s := openStore(t, migratedTemplate(t).Database(t), Options{})
	users := []struct{ name, claims string }{
		{"arr123", `{"a":[1,2,3]}`},
		{"arr1", `{"a":[1]}`},
		{"arr12", `{"a":[1,2]}`},
		{"arr21", `{"a":[2,1]}`},
		{"arr112", `{"a":[1,1,2]}`},
		{"arrEmpty", `{"a":[]}`},
		{"one", `{"a":1}`},
		{"onePointZero", `{"a":1.0}`},
		{"oneString", `{"a":"1"}`},
		{"true", `{"b":true}`},
		{"trueString", `{"b":"true"}`},
		{"null", `{"c":null}`},
		{"empty", `{}`},
		{"scalar", `{"s":"x"}`},
		{"scalarInArray", `{"s":["x"]}`},
		{"wellington", `{"addr":{"country":"NZ","city":"Wellington","geo":{"lat":-41.3}}}`},
		{"auckland", `{"addr":{"country":"NZ","city":"Auckland"}}`},
		{"addrString", `{"addr":"NZ"}`},
		{"addrArray", `{"addr":[{"country":"NZ"}]}`},
		{"objectInArray", `{"o":[{"k":1,"j":2}]}`},
		{"keys", `{"a.b":1,"x[0]":2,"$k":3,"it's":4,"q\"uote":5,"50%":6,"under_score":7,"ünï":"cødé","a":{"b":9}}`},
	}
	byID := map[string]string{}
	for _, u := range users {
		byID[create(t, s, u.claims, nil).ID] = u.name
	}
	for _, tc := range []struct {
		criteria string
		want     []string
	}{
		{`{"a":[1,2]}`, []string{"arr12"}},
		{`{"a":[1]}`, []string{"arr1"}},
		{`{"a":[2,1]}`, []string{"arr21"}},
		{`{"a":[1,1,2]}`, []string{"arr112"}},
		{`{"a":[]}`, []string{"arrEmpty"}},
		{`{"a":[1.0,2]}`, []string{"arr12"}},
		{`{"a":1}`, []string{"one", "onePointZero"}},
		{`{"a":1.0}`, []string{"one", "onePointZero"}},
		{`{"a":1e0}`, []string{"one", "onePointZero"}},
		{`{"a":"1"}`, []string{"oneString"}},
		{`{"b":true}`, []string{"true"}},
		{`{"b":"true"}`, []string{"trueString"}},
		{`{"c":null}`, []string{"null"}},
		{`{"missing":null}`, nil},
		{`{"s":"x"}`, []string{"scalar"}},
		{`{"s":["x"]}`, []string{"scalarInArray"}},
		{`{"addr":{"country":"NZ"}}`, []string{"wellington", "auckland"}},
		{`{"addr":{"geo":{"lat":-41.3}}}`, []string{"wellington"}},
		{`{"addr":{"country":"NZ","city":"Auckland"}}`, []string{"auckland"}},
		{`{"addr":{"country":"NZ","city":"Nelson"}}`, nil},
		{`{"addr":{}}`, []string{"wellington", "auckland"}},
		{`{"addr":"NZ"}`, []string{"addrString"}},
		{`{"addr":[{"country":"NZ"}]}`, []string{"addrArray"}},
		{`{"o":[{"k":1}]}`, nil},
		{`{"o":[{"j":2,"k":1}]}`, []string{"objectInArray"}},
		{`{"a.b":1}`, []string{"keys"}},
		{`{"a":{"b":9}}`, []string{"keys"}},
		{`{"a":{"b":9},"a.b":1}`, []string{"keys"}},
		{`{"a.b":9}`, nil},
		{`{"x[0]":2}`, []string{"keys"}},
		{`{"x":[2]}`, nil},
		{`{"$k":3}`, []string{"keys"}},
		{`{"it's":4}`, []string{"keys"}},
		{`{"q\"uote":5}`, []string{"keys"}},
		{`{"50%":6}`, []string{"keys"}},
		{`{"5_%":6}`, nil},
		{`{"under_score":7}`, []string{"keys"}},
		{`{"underXscore":7}`, nil},
		{`{"ünï":"cødé"}`, []string{"keys"}},
		{`{"a.b":1,"x[0]":3}`, nil},
	} {
		var got []string
		for _, id := range search(t, s, store.Criteria{Claims: []byte(tc.criteria)}) {
			got = append(got, byID[id])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("claims %s: found %v, want %v", tc.criteria, got, tc.want)
		}
	}
	// The empty object, like no claims criterion, selects everyone.
	for _, claims := range []string{`{}`, ` { } `, ""} {
		c := store.Criteria{}
		if claims != "" {
			c.Claims = []byte(claims)
		}
		if got := search(t, s, c); len(got) != len(users) {
			t.Errorf("claims %q: found %d users, want all %d", claims, len(got), len(users))
		}
	}
}

// Any subset of the provider link criteria, alone and with claims: every
// criterion given must hold.
func TestSearchProvider(t *testing.T) {
	t.Parallel()
	s := openStore(t, migratedTemplate(t).Database(t), Options{})
	const (
		pidA, pidB = "41458e5a-9092-40b7-9a26-d4eb43c5792f", "5b0e8d4a-3c1f-4e6b-9a2d-7f8e9c0b1a2d"
		url1, url2 = "https://one.example.com", "https://two.example.com"
	)
	users := []struct {
		name, claims string
		link         *store.ProviderLink
	}{
		{"a1", `{"plan":"pro"}`, &store.ProviderLink{ProviderID: pidA, URL: url1, SubjectID: "s1"}},
		{"a2", `{"plan":"free"}`, &store.ProviderLink{ProviderID: pidA, URL: url1, SubjectID: "s2"}},
		{"b1", `{"plan":"pro"}`, &store.ProviderLink{ProviderID: pidB, URL: url2, SubjectID: "s1"}},
		{"b3", `{"plan":"pro"}`, &store.ProviderLink{ProviderID: pidB, URL: url1, SubjectID: "s3"}},
		{"unlinked", `{"plan":"pro"}`, nil},
	}
	byID := map[string]string{}
	for _, u := range users {
		byID[create(t, s, u.claims, u.link).ID] = u.name
	}
	for _, tc := range []struct {
		c    store.Criteria
		want []string
	}{
		{store.Criteria{ProviderID: pidA}, []string{"a1", "a2"}},
		{store.Criteria{SubjectID: "s1"}, []string{"a1", "b1"}},
		{store.Criteria{URL: url1}, []string{"a1", "a2", "b3"}},
		{store.Criteria{ProviderID: pidA, SubjectID: "s1"}, []string{"a1"}},
		{store.Criteria{ProviderID: pidB, URL: url1}, []string{"b3"}},
		{store.Criteria{URL: url2, SubjectID: "s1"}, []string{"b1"}},
		{store.Criteria{ProviderID: pidA, URL: url1, SubjectID: "s2"}, []string{"a2"}},
		{store.Criteria{ProviderID: pidA, URL: url2, SubjectID: "s1"}, nil},
		{store.Criteria{SubjectID: "s%"}, nil},
		{store.Criteria{URL: url1, Claims: []byte(`{"plan":"pro"}`)}, []string{"a1", "b3"}},
		{store.Criteria{Claims: []byte(`{"plan":"pro"}`)}, []string{"a1", "b1", "b3", "unlinked"}},
		{store.Criteria{ProviderID: pidA, Claims: []byte(`{"plan":"team"}`)}, nil},
	} {
		var got []string
		for _, id := range search(t, s, tc.c) {
			got = append(got, byID[id])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: found %v, want %v", tc.c, got, tc.want)
		}
	}
}

// Pages of a search follow one another without gaps or repeats, and say
// whether more follow exactly; an update keeps the user's place.
func TestSearchPaging(t *testing.T) {
	t.Parallel()
	s := openStore(t, migratedTemplate(t).Database(t), Options{})
	var want []string
	for i := range 50 {
		if i%3 == 0 {
			want = append(want, create(t, s, `{"tag":"x","i":`+fmt.Sprint(i)+`}`, nil).ID)
		} else {
			create(t, s, `{"tag":"y"}`, nil)
		}
	}
	if _, err := s.UpdateUser(t.Context(), want[0], store.UserChange{SetClaims: true, Claims: []byte(`{"tag":"x","updated":true}`)}, nil); err != nil {
		t.Fatal(err)
	}
	c := store.Criteria{Claims: []byte(`{"tag":"x"}`)}
	var got []string
	var after int64
	for page := 0; ; page++ {
		users, more, err := s.SearchUsers(t.Context(), c, store.Page{Limit: 5, AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			got = append(got, u.ID)
			after = u.Seq
		}
		if wantMore := len(got) < len(want); more != wantMore || len(users) != 5 && more {
			t.Fatalf("page %d: %d users, more %v; %d of %d found", page, len(users), more, len(got), len(want))
		}
		if !more {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged search found %v, want %v", got, want)
	}
	if users, more, err := s.SearchUsers(t.Context(), c, store.Page{Limit: 0}); err != nil || len(users) != 0 || !more {
		t.Errorf("limit 0: %d users, more %v, %v; want none, more", len(users), more, err)
	}
}

// A search keeps the Seq rule as ListUsers does: it waits for a create
// that drew a smaller Seq and has not committed (see
// TestListWaitsForCreateInFlight).
func TestSearchWaitsForCreateInFlight(t *testing.T) {
	t.Parallel()
	checkReadWaitsForCreateInFlight(t, func(ctx context.Context, s *Store) ([]store.User, error) {
		users, _, err := s.SearchUsers(ctx, store.Criteria{Claims: []byte(`{"k":1}`)}, store.Page{Limit: 10})
		return users, err
	})
}

// LoadUsers over several COPY batches: Seq in the order given and after
// every earlier user, version 1, times in UTC milliseconds, links and
// claims searchable.
func TestLoadUsers(t *testing.T) {
	t.Parallel()
	s := openStore(t, migratedTemplate(t).Database(t), Options{})
	ctx := t.Context()
	first := create(t, s, `{"i":-1}`, nil)
	const n = 2*loadBatch + 7
	created := time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("UTC+2", 7200))
	users := make([]store.User, n)
	for i := range users {
		users[i] = store.User{ID: uuid.NewString(), Claims: fmt.Sprintf(`{"i":%d,"tags":["t%d"]}`, i, i%3), CreatedAt: created}
		if i%2 == 0 {
			users[i].Provider = &store.ProviderLink{ProviderID: "41458e5a-9092-40b7-9a26-d4eb43c5792f", URL: "https://idp.example.com", SubjectID: fmt.Sprint("sub-", i)}
		}
	}
	if err := s.LoadUsers(ctx, users); err != nil {
		t.Fatalf("LoadUsers: %v", err)
	}
	all, more, err := s.ListUsers(ctx, store.Page{Limit: n + 1})
	if err != nil || more || len(all) != n+1 {
		t.Fatalf("ListUsers: %d users, more %v, %v; want %d", len(all), more, err, n+1)
	}
	if all[0].ID != first.ID {
		t.Fatalf("the user created before the load is not first")
	}
	wantTime := time.Date(2026, 1, 2, 1, 4, 5, 678_000_000, time.UTC)
	for i, u := range all[1:] {
		w := users[i]
		if u.ID != w.ID || u.Version != 1 || !u.CreatedAt.Equal(wantTime) || !u.UpdatedAt.Equal(wantTime) ||
			u.CreatedAt.Location() != time.UTC || !storetest.SameJSON(u.Claims, w.Claims) || (u.Provider == nil) != (w.Provider == nil) ||
			u.Provider != nil && *u.Provider != *w.Provider {
			t.Fatalf("user %d listed as %+v, want %+v with version 1 and times %v", i, u, w, wantTime)
		}
	}
	if got := search(t, s, store.Criteria{Claims: []byte(`{"i":12345}`)}); !slices.Equal(got, []string{users[12345].ID}) {
		t.Errorf("search by claim after load: %v, want user 12345", got)
	}
	if got := search(t, s, store.Criteria{SubjectID: "sub-20000"}); !slices.Equal(got, []string{users[20000].ID}) {
		t.Errorf("search by subject after load: %v, want user 20000", got)
	}
	if got := search(t, s, store.Criteria{Claims: []byte(`{"tags":["t1"]}`)}); len(got) != n/3 {
		t.Errorf("search by tags after load: %d users, want %d", len(got), n/3)
	}
	if after := create(t, s, `{}`, nil); after.Seq <= all[n].Seq {
		t.Errorf("a create after the load drew Seq %d, not after the load's last %d", after.Seq, all[n].Seq)
	}
}

// The planner finds claims through users_claims_gin and links through
// their btree indexes when the values are rare, rather than reading users
// in Seq order and filtering; a value that a fifth or a hundredth of users
// share is read in Seq order, a page's worth, rather than all of its
// matches sorted.
// Enough users for the difference to show in the statistics; the plans
// are the ones SearchUsers runs (custom plans, for the values given).
func TestSearchPlansUseIndexes(t *testing.T) {
	t.Parallel()
	s := openStore(t, migratedTemplate(t).Database(t), Options{})
	ctx := t.Context()
	const (
		n                  = 30_000
		commonPID, rarePID = "41458e5a-9092-40b7-9a26-d4eb43c5792f", "5b0e8d4a-3c1f-4e6b-9a2d-7f8e9c0b1a2d"
	)
	created := time.Now()
	users := make([]store.User, n)
	for i := range users {
		pid := commonPID
		if i%1000 == 0 {
			pid = rarePID
		}
		users[i] = store.User{
			ID:        uuid.NewString(),
			Claims:    fmt.Sprintf(`{"email":"user%d@example.com","cohort":"c-%d","tier":"t-%d","address":{"country":"NZ","postcode":"%04d"}}`, i, i%100, i%5, i%5000),
			CreatedAt: created,
			Provider:  &store.ProviderLink{ProviderID: pid, URL: fmt.Sprintf("https://idp%d.example.com", i%50), SubjectID: fmt.Sprint("sub-", i)},
		}
	}
	if err := s.LoadUsers(ctx, users); err != nil {
		t.Fatalf("LoadUsers: %v", err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE users`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c       store.Criteria
		indexes []string // any of them
	}{
		{store.Criteria{Claims: []byte(`{"email":"user12345@example.com"}`)}, []string{"users_claims_gin"}},
		{store.Criteria{Claims: []byte(`{"cohort":"c-7","email":"user7@example.com"}`)}, []string{"users_claims_gin"}},
		{store.Criteria{Claims: []byte(`{"address":{"postcode":"0042"}}`)}, []string{"users_claims_gin"}},
		{store.Criteria{Claims: []byte(`{"tier":"t-3"}`)}, []string{"users_seq_key"}},
		// A value 1% of users share: the default statistics sample guessed
		// it rare for most such values and read all its matches through
		// GIN; migration 00004's larger sample knows better.
		{store.Criteria{Claims: []byte(`{"cohort":"c-8"}`)}, []string{"users_seq_key"}},
		{store.Criteria{SubjectID: "sub-777"}, []string{"users_subject_id"}},
		{store.Criteria{ProviderID: rarePID}, []string{"users_provider_subject_uq"}},
		{store.Criteria{ProviderID: commonPID, SubjectID: "sub-777"}, []string{"users_provider_subject_uq", "users_subject_id"}},
		{store.Criteria{URL: "https://idp7.example.com"}, []string{"users_provider_url_seq"}},
	} {
		query, args, err := searchQuery(tc.c, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var plan string
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, customPlans); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+query, args...).Scan(&plan)
		})
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		if !slices.ContainsFunc(tc.indexes, func(index string) bool { return strings.Contains(plan, `"Index Name": "`+index+`"`) }) {
			t.Errorf("search %s %+v: plan uses none of %v:\n%s", tc.c.Claims, tc.c, tc.indexes, plan)
		}
	}
}
