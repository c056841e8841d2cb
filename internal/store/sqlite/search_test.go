package sqlite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// Every search reads indexes in seq order from the cursor: no scan of
// users or of the claims index, no sort, so a page costs what it reads
// wherever it starts. (docs/api.md shows these plans.)
func TestSearchQueryPlans(t *testing.T) {
	s := openTemp(t)
	for _, tc := range []struct {
		name   string
		c      store.Criteria
		search []string // each must be in the plan
	}{
		{name: "one_claim", c: store.Criteria{Claims: []byte(`{"country":"NZ"}`)},
			search: []string{"SEARCH c USING PRIMARY KEY (path=? AND kind=? AND value=? AND seq>?)", "SEARCH u USING INTEGER PRIMARY KEY (rowid=?)"}},
		{name: "nested_claims", c: store.Criteria{Claims: []byte(`{"address":{"country":"NZ","city":"Wellington"},"tags":["a"],"ok":true}`)},
			search: []string{"SEARCH c USING PRIMARY KEY (path=? AND kind=? AND value=? AND seq>?)", "SEARCH x USING COVERING INDEX user_claims_seq (seq=? AND path=? AND kind=? AND value=?)"}},
		{name: "provider_link", c: store.Criteria{ProviderID: "p", SubjectID: "s"},
			search: []string{"users_provider_subject_uq (provider_id=? AND subject_id=?)"}},
		{name: "provider_link_claims", c: store.Criteria{ProviderID: "p", SubjectID: "s", Claims: []byte(`{"a":1}`)},
			search: []string{"users_provider_subject_uq (provider_id=? AND subject_id=?)", "SEARCH x USING COVERING INDEX user_claims_seq (seq=? AND path=? AND kind=? AND value=?)"}},
		{name: "provider_id", c: store.Criteria{ProviderID: "p"},
			search: []string{"users_provider_id (provider_id=? AND rowid>?)"}},
		{name: "subject_id", c: store.Criteria{SubjectID: "s"},
			search: []string{"users_subject_id (subject_id=? AND rowid>?)"}},
		{name: "url", c: store.Criteria{URL: "https://idp.example"},
			search: []string{"users_provider_url (provider_url=? AND rowid>?)"}},
		{name: "claim_and_url", c: store.Criteria{URL: "https://idp.example", Claims: []byte(`{"a":1}`)},
			search: []string{"SEARCH c USING PRIMARY KEY (path=? AND kind=? AND value=? AND seq>?)"}},
		{name: "everyone", c: store.Criteria{Claims: []byte(`{}`)},
			search: []string{"SEARCH u USING INTEGER PRIMARY KEY (rowid>?)"}},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			var leaves []claimLeaf
			if tc.c.Claims != nil {
				var err error
				if leaves, err = s.claimLeaves(t.Context(), tc.c.Claims); err != nil {
					t.Fatal(err)
				}
			}
			query, args := searchQuery(tc.c, leaves, store.Page{Limit: 100, AfterSeq: 5000})
			plan := queryPlan(t, s, query, args...)
			t.Logf("%s:\n%s", tc.name, plan)
			for line := range strings.Lines(plan) {
				if strings.HasPrefix(line, "SCAN u") || strings.HasPrefix(line, "SCAN c") || strings.HasPrefix(line, "SCAN x") || strings.Contains(line, "TEMP B-TREE") {
					t.Errorf("the search scans or sorts:\n%s", plan)
				}
			}
			for _, want := range tc.search {
				if !strings.Contains(plan, want) {
					t.Errorf("plan lacks %q:\n%s", want, plan)
				}
			}
		})
	}
}

// The migration that adds the claims index fills it for the users stored
// before it.
func TestClaimsIndexBackfilled(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{ID: "0190a6d2-0000-7000-8000-000000000001", Claims: `{"a":{"b":[1]},"c":"d"}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rebuildClaimsIndex(t, s)
	for _, claims := range []string{`{"c":"d"}`, `{"a":{"b":[1]}}`, `{"a":{}}`} {
		got, _, err := s.SearchUsers(ctx, store.Criteria{Claims: []byte(claims)}, store.Page{Limit: 10})
		if err != nil || len(got) != 1 || got[0].ID != u.ID {
			t.Errorf("search %s after the migration: %v, %v; want the user stored before it", claims, got, err)
		}
	}
}

// The claims index holds exactly the rows its migration would make of the
// users' current claims after creates, updates and deletes of claims of
// every JSON kind: a row left behind would let a search find a user by
// claims it no longer has, a row missing would hide it. The expected rows
// come from the migration's own backfill: back to before the index, then
// forward again.
func TestClaimsIndexRowsFollowClaims(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	claims := []string{
		`{"a.b":1.5,"big":9007199254740991,"e":"\u00e9\"q\\","n":null,"neg":-0.25,"o":{"x":[1,"two",{"y":false}]},"t":true,"z":[]}`,
		`{"k":"v","list":[[1,2],{"a":{}}],"num":1e+300,"zero":0}`,
		`{}`,
		`{"$":"dollar","[0]":"brackets","quote\"key":{"deep":{"deeper":[null,true,-1]}}}`,
	}
	var users []store.User
	for i, c := range claims {
		u, err := s.CreateUser(ctx, store.User{ID: uuid.NewString(), Claims: c, CreatedAt: time.Now()}, nil)
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		users = append(users, u)
	}
	// Each user's claims become the next one's, the last user's the first's.
	for i, u := range users {
		next := claims[(i+1)%len(claims)]
		if _, err := s.UpdateUser(ctx, u.ID, store.UserChange{SetClaims: true, Claims: []byte(next)}, nil); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if err := s.DeleteUser(ctx, users[0].ID, 0, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	kept := claimsIndexRows(t, s)
	rebuildClaimsIndex(t, s)
	rebuilt := claimsIndexRows(t, s)
	stale, missing := setDiff(kept, rebuilt), setDiff(rebuilt, kept)
	if len(stale) != 0 || len(missing) != 0 || len(kept) == 0 {
		t.Errorf("claims index of %d rows: stale %q, missing %q", len(kept), stale, missing)
	}
}

// rebuildClaimsIndex migrates s back to before the claims index and
// forward again (the users are kept), so that the migration's backfill
// makes the index anew from the users' current claims.
func rebuildClaimsIndex(t *testing.T, s *Store) {
	t.Helper()
	p := migrator(t, s.w)
	if _, err := p.DownTo(t.Context(), 3); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("up: %v", err)
	}
}

// claimsIndexRows lists the claims index, a row a string, with each
// value's SQLite type (1 and 1.0 are different rows).
func claimsIndexRows(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.w.QueryContext(t.Context(), `SELECT path, kind, typeof(value), value, seq FROM user_claims`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var path, kind, typ string
		var value any
		var seq int64
		if err := rows.Scan(&path, &kind, &typ, &value, &seq); err != nil {
			t.Fatal(err)
		}
		all = append(all, fmt.Sprintf("%s %s %s:%v user %d", path, kind, typ, value, seq))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}

// setDiff is the elements of a that are not in b.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// The rarest leaf drives a search: among claims that 30 users share and
// one only one user has, the rare one comes first whatever the order of
// the criteria's keys (json_tree lists them sorted).
func TestSearchDrivenByRarestLeaf(t *testing.T) {
	s := openTemp(t)
	var users []store.User
	for i := range 30 {
		claims := fmt.Sprintf(`{"aCommon":"shared","zRare":"r-%d"}`, i)
		users = append(users, store.User{ID: uuid.NewString(), Claims: claims, CreatedAt: time.Now()})
	}
	if err := s.LoadUsers(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	leaves, err := s.claimLeaves(t.Context(), []byte(`{"aCommon":"shared","zRare":"r-7"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.orderBySelectivity(t.Context(), leaves); err != nil {
		t.Fatal(err)
	}
	if got := leaves[0].value; got != "r-7" {
		t.Fatalf("the search is driven by %v, want the rare value r-7", got)
	}
	found, _, err := s.SearchUsers(t.Context(), store.Criteria{Claims: []byte(`{"aCommon":"shared","zRare":"r-7"}`)}, store.Page{Limit: 10})
	if err != nil || len(found) != 1 || found[0].ID != users[7].ID {
		t.Fatalf("found %v (%v), want user 7 alone", found, err)
	}
}

// LoadUsers writes in chunks of loadChunk: a load of several chunks stores
// every user in order, and one that fails in its second chunk keeps the
// first chunk and nothing of the failed one, as its doc says.
func TestLoadUsersInChunks(t *testing.T) {
	s := openTemp(t)
	batch := func(n int) []store.User {
		users := make([]store.User, n)
		for i := range users {
			users[i] = store.User{ID: uuid.NewString(), Claims: fmt.Sprintf(`{"i":%d}`, i), CreatedAt: time.Now()}
		}
		return users
	}
	users := batch(2*loadChunk + 3)
	if err := s.LoadUsers(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	var listed []store.User
	for more, after := true, int64(0); more; after = listed[len(listed)-1].Seq {
		var page []store.User
		var err error
		page, more, err = s.ListUsers(t.Context(), store.Page{Limit: 1000, AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page...)
	}
	if len(listed) != len(users) {
		t.Fatalf("%d users listed, want %d", len(listed), len(users))
	}
	for i, u := range listed {
		if u.ID != users[i].ID {
			t.Fatalf("user %d listed is %s, want %s: a load keeps its order", i, u.ID, users[i].ID)
		}
	}

	failing := batch(2 * loadChunk)
	failing[loadChunk+5].ID = users[0].ID // taken: the second chunk fails
	if err := s.LoadUsers(t.Context(), failing); err == nil {
		t.Fatal("a load with a taken id succeeded")
	}
	if _, err := s.GetUser(t.Context(), failing[loadChunk-1].ID); err != nil {
		t.Errorf("the last user of the first chunk: %v, want it stored", err)
	}
	if _, err := s.GetUser(t.Context(), failing[loadChunk].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the first user of the failed chunk: %v, want ErrNotFound", err)
	}
}
