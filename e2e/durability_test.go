package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// callTimeout bounds every single request the tests below make off the
// test goroutine, so a stuck server fails the test instead of hanging it.
var callTimeout = wait(30 * time.Second)

// restResult is the outcome of a REST call made where t.Fatal is not
// allowed (other goroutines) or where a transport error is an outcome.
type restResult struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

func (r restResult) response() response {
	return response{Status: r.Status, Header: r.Header, Body: r.Body}
}

// newRESTClient returns a client with its own connection pool, so
// concurrent callers do not queue behind a shared idle-connection limit.
func newRESTClient(t *testing.T) *http.Client {
	c := &http.Client{
		Timeout:   callTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true},
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// tryREST sends one JSON request, with the headers given as name, value
// pairs, and never fails the test itself.
func tryREST(client *http.Client, method, rawURL, body string, headers ...string) restResult {
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rdr)
	if err != nil {
		return restResult{Err: err}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return restResult{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return restResult{Status: resp.StatusCode, Header: resp.Header, Body: data, Err: err}
}

// randomHex returns n random bytes as hex: markers that occur nowhere else.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// claimsV is {"v": n}.
func claimsV(n int) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"v": structpb.NewNumberValue(float64(n))}}
}

// listPage is one REST list response, with whether nextCursor was present.
type listPage struct {
	IDs           []string
	NextCursor    string
	HasNextCursor bool
}

// getPage fetches one REST list page and checks its shape: 200, "data" an
// array (never missing or null), "nextCursor" a non-empty string when
// present.
func getPage(t *testing.T, s *server, limit int, cursor string) listPage {
	t.Helper()
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := "/v1/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	r := s.do(t, "GET", path, "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("GET %s: body %s: %v", path, r.Body, err)
	}
	data, ok := raw["data"]
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		t.Fatalf("GET %s: \"data\" is not an array: %s", path, r.Body)
	}
	var users []struct {
		ID     string         `json:"id"`
		Claims map[string]any `json:"claims"`
	}
	if err := json.Unmarshal(data, &users); err != nil {
		t.Fatalf("GET %s: data %s: %v", path, data, err)
	}
	var p listPage
	for _, u := range users {
		if u.ID == "" || u.Claims == nil {
			t.Fatalf("GET %s: user without id or claims: %s", path, r.Body)
		}
		p.IDs = append(p.IDs, u.ID)
	}
	if nc, ok := raw["nextCursor"]; ok {
		p.HasNextCursor = true
		if err := json.Unmarshal(nc, &p.NextCursor); err != nil || p.NextCursor == "" {
			t.Fatalf("GET %s: nextCursor %s", path, nc)
		}
	}
	return p
}

// listAllREST pages through every user with the given limit and checks
// that no page is empty and only the last one lacks nextCursor.
func listAllREST(t *testing.T, s *server, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 10000 {
		p := getPage(t, s, limit, cursor)
		if len(p.IDs) == 0 && (cursor != "" || p.HasNextCursor) {
			t.Fatalf("empty page (cursor %q, next %q)", cursor, p.NextCursor)
		}
		ids = append(ids, p.IDs...)
		if !p.HasNextCursor {
			return ids
		}
		cursor = p.NextCursor
	}
	t.Fatal("listing did not end")
	return nil
}

// createGRPC creates n users with claims {"i": k} over gRPC and returns
// their ids in creation order.
func createGRPC(t *testing.T, c usersv1.UserServiceClient, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		resp, err := c.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{
			Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"i": structpb.NewNumberValue(float64(i))}},
		}})
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		ids = append(ids, resp.GetUser().GetId())
	}
	return ids
}

func TestConcurrentLinkConflict(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.grpc()
	client := newRESTClient(t)
	const racers = 8

	// race runs fn in racers goroutines released at the same moment.
	race := func(fn func(i int)) {
		release := make(chan struct{})
		var ready, done sync.WaitGroup
		for i := range racers {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Done()
				<-release
				fn(i)
			}()
		}
		ready.Wait()
		close(release)
		done.Wait()
	}

	// checkREST wants exactly one `ok` status and 409 Conflict bodies for
	// the rest; it returns the index of the winner.
	checkREST := func(t *testing.T, results []restResult, ok int) int {
		t.Helper()
		winner := -1
		for i, r := range results {
			if r.Err != nil {
				t.Fatalf("racer %d: %v", i, r.Err)
			}
			if r.Status == ok {
				if winner >= 0 {
					t.Fatalf("racers %d and %d both got %d: %s / %s", winner, i, ok, results[winner].Body, r.Body)
				}
				winner = i
				continue
			}
			wantError(t, r.response(), http.StatusConflict, "Conflict")
		}
		if winner < 0 {
			t.Fatalf("no racer got %d", ok)
		}
		return winner
	}
	checkGRPC := func(t *testing.T, errs []error) int {
		t.Helper()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("racers %d and %d both succeeded", winner, i)
				}
				winner = i
				continue
			}
			if status.Code(err) != codes.AlreadyExists {
				t.Fatalf("racer %d: %v, want AlreadyExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no racer succeeded")
		}
		return winner
	}
	// linkedTo returns the users (of ids) that hold the given subject.
	linkedTo := func(t *testing.T, ids []string, subject string) []string {
		t.Helper()
		var holders []string
		for _, id := range ids {
			resp, err := c.GetUser(t.Context(), &usersv1.GetUserRequest{Id: id})
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			if p := resp.GetUser().GetAuthenticationProvider(); p.GetSubjectId() == subject && p.GetProviderId() == providerA {
				holders = append(holders, id)
			}
		}
		return holders
	}
	allUsers := func(t *testing.T) []string {
		t.Helper()
		return listAllREST(t, s, 1000)
	}

	t.Run("case=REST creates", func(t *testing.T) {
		subject := "race-rest-" + randomHex(8)
		results := make([]restResult, racers)
		race(func(i int) {
			results[i] = tryREST(client, "POST", "http://"+s.HTTPAddr+"/v1/users",
				`{"claims":{"racer":`+strconv.Itoa(i)+`},"authenticationProvider":`+provider(subject)+`}`)
		})
		w := checkREST(t, results, http.StatusCreated)
		var u struct{ ID string }
		if err := json.Unmarshal(results[w].Body, &u); err != nil || u.ID == "" {
			t.Fatalf("winner body %s", results[w].Body)
		}
		if got := linkedTo(t, allUsers(t), subject); !slices.Equal(got, []string{u.ID}) {
			t.Fatalf("users linked to the subject: %v, want only the winner %s", got, u.ID)
		}
	})

	t.Run("case=gRPC creates", func(t *testing.T) {
		subject := "race-grpc-" + randomHex(8)
		errs := make([]error, racers)
		ids := make([]string, racers)
		race(func(i int) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			resp, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{
				Claims: claimsV(i),
				AuthenticationProvider: &usersv1.AuthenticationProvider{
					ProviderId: providerA, Url: "https://example-university.au.auth0.com", SubjectId: subject,
				},
			}})
			errs[i], ids[i] = err, resp.GetUser().GetId()
		})
		w := checkGRPC(t, errs)
		if got := linkedTo(t, allUsers(t), subject); !slices.Equal(got, []string{ids[w]}) {
			t.Fatalf("users linked to the subject: %v, want only the winner %s", got, ids[w])
		}
	})

	t.Run("case=REST updates of different users", func(t *testing.T) {
		subject := "race-put-" + randomHex(8)
		ids := make([]string, racers)
		for i := range ids {
			ids[i] = createUser(t, s, `{"claims":{"racer":`+strconv.Itoa(i)+`}}`)["id"].(string)
		}
		results := make([]restResult, racers)
		race(func(i int) {
			results[i] = tryREST(client, "PUT", "http://"+s.HTTPAddr+"/v1/users/"+ids[i],
				`{"authenticationProvider":`+provider(subject)+`}`)
		})
		w := checkREST(t, results, http.StatusOK)
		if got := linkedTo(t, ids, subject); !slices.Equal(got, []string{ids[w]}) {
			t.Fatalf("users linked to the subject: %v, want only the winner %s", got, ids[w])
		}
	})

	t.Run("case=gRPC updates of different users", func(t *testing.T) {
		subject := "race-upd-" + randomHex(8)
		ids := createGRPC(t, c, racers)
		errs := make([]error, racers)
		race(func(i int) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, errs[i] = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
				Id: ids[i],
				User: &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{
					ProviderId: providerA, Url: "https://example-university.au.auth0.com", SubjectId: subject,
				}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"authentication_provider"}},
			})
		})
		w := checkGRPC(t, errs)
		if got := linkedTo(t, ids, subject); !slices.Equal(got, []string{ids[w]}) {
			t.Fatalf("users linked to the subject: %v, want only the winner %s", got, ids[w])
		}
	})
}

func TestListPagingWhileWriting(t *testing.T) {
	t.Parallel()

	t.Run("case=keyset paging is stable under creates and deletes", func(t *testing.T) {
		t.Parallel()
		s := start(t, "")
		const limit = 4
		var order []string // every id ever created, in creation order
		rank := map[string]int{}
		create := func() string {
			id := createUser(t, s, `{"claims":{"n":`+strconv.Itoa(len(order))+`}}`)["id"].(string)
			if _, dup := rank[id]; dup {
				t.Fatalf("id %s assigned twice", id)
			}
			rank[id] = len(order)
			order = append(order, id)
			return id
		}
		remove := func(id string) {
			if r := s.do(t, "DELETE", "/v1/users/"+id, ""); r.Status != http.StatusNoContent {
				t.Fatalf("delete %s: %d %s", id, r.Status, r.Body)
			}
		}
		for range 25 {
			create()
		}
		initial := slices.Clone(order)

		var (
			listed           []string
			seen             = map[string]int{}
			deletedUnreached = map[string]bool{}
			deletedSeen      = map[string]bool{}
			createdDuring    []string
			cursor           string
			last             listPage
		)
		for page := 0; ; page++ {
			if page > 40 {
				t.Fatalf("paging did not end after %d pages: %v", page, listed)
			}
			p := getPage(t, s, limit, cursor)
			// Every page fetched here has users after the cursor (a user
			// is created between pages), so none may be empty.
			if len(p.IDs) == 0 {
				t.Fatalf("page %d is empty (cursor %q, next %q)", page, cursor, p.NextCursor)
			}
			if p.HasNextCursor && len(p.IDs) != limit {
				t.Fatalf("page %d has %d users and a nextCursor, want %d", page, len(p.IDs), limit)
			}
			for _, id := range p.IDs {
				seen[id]++
				listed = append(listed, id)
			}
			last = p
			if !p.HasNextCursor {
				break
			}
			cursor = p.NextCursor
			if page >= 6 {
				continue // the rest of the pages without writes
			}
			// Between pages: one new user, one deletion of a user not yet
			// reached (from the far end of the initial users), one
			// deletion of a user already listed.
			createdDuring = append(createdDuring, create())
			frontier := rank[listed[len(listed)-1]]
			for i := len(initial) - 1; i >= 0; i-- {
				id := initial[i]
				if rank[id] > frontier && !deletedUnreached[id] {
					remove(id)
					deletedUnreached[id] = true
					break
				}
			}
			for _, id := range listed {
				if !deletedSeen[id] {
					remove(id)
					deletedSeen[id] = true
					break
				}
			}
		}
		if len(deletedUnreached) == 0 || len(deletedSeen) == 0 || len(createdDuring) == 0 {
			t.Fatalf("the scenario did not write while paging: %d/%d/%d", len(deletedUnreached), len(deletedSeen), len(createdDuring))
		}
		if last.HasNextCursor {
			t.Fatal("the last page has a nextCursor")
		}

		for id, n := range seen {
			if n != 1 {
				t.Errorf("user %s listed %d times", id, n)
			}
			if _, ok := rank[id]; !ok {
				t.Errorf("listed user %s was never created here", id)
			}
		}
		for i := 1; i < len(listed); i++ {
			if rank[listed[i]] <= rank[listed[i-1]] {
				t.Fatalf("not in creation order: %s (created #%d) listed after %s (created #%d)",
					listed[i], rank[listed[i]], listed[i-1], rank[listed[i-1]])
			}
		}
		for _, id := range initial {
			switch {
			case deletedUnreached[id] && seen[id] != 0:
				t.Errorf("user %s was deleted before the listing reached it but was listed", id)
			case !deletedUnreached[id] && seen[id] != 1:
				t.Errorf("user %s existed throughout but was listed %d times", id, seen[id])
			}
		}
		// Users created while paging come after everything listed before
		// them, i.e. after every initial user.
		lastInitial := -1
		for i, id := range listed {
			if rank[id] < len(initial) {
				lastInitial = i
			}
		}
		for i, id := range listed {
			if rank[id] >= len(initial) && i < lastInitial {
				t.Errorf("user %s created while paging is listed at %d, before initial users (last at %d)", id, i, lastInitial)
			}
		}

		// A fresh listing now shows exactly the survivors in creation order.
		var want []string
		for _, id := range order {
			if !deletedUnreached[id] && !deletedSeen[id] {
				want = append(want, id)
			}
		}
		for _, l := range []int{limit, 1000} {
			if got := listAllREST(t, s, l); !slices.Equal(got, want) {
				t.Fatalf("listing with limit %d after the writes:\n got %v\nwant %v", l, got, want)
			}
		}
	})

	t.Run("case=empty list has data []", func(t *testing.T) {
		t.Parallel()
		s := start(t, "")
		r := s.do(t, "GET", "/v1/users", "")
		if r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &raw); err != nil {
			t.Fatalf("body %s: %v", r.Body, err)
		}
		if d, ok := raw["data"]; !ok || string(bytes.TrimSpace(d)) != "[]" {
			t.Errorf(`want "data": [], got body %s`, r.Body)
		}
		if _, ok := raw["nextCursor"]; ok {
			t.Fatalf("empty list has a nextCursor: %s", r.Body)
		}
		resp, err := s.grpc().ListUsers(t.Context(), &usersv1.ListUsersRequest{})
		if err != nil || len(resp.GetData()) != 0 || resp.GetNextCursor() != "" {
			t.Fatalf("gRPC empty list: %v %v", resp, err)
		}
	})

	t.Run("case=exact pages have no nextCursor", func(t *testing.T) {
		t.Parallel()
		s := start(t, "")
		ids := createGRPC(t, s.grpc(), 8)
		for _, tc := range []struct {
			limit int
			sizes []int
		}{
			{4, []int{4, 4}},
			{8, []int{8}},
			{3, []int{3, 3, 2}},
			{1, []int{1, 1, 1, 1, 1, 1, 1, 1}},
			{9, []int{8}},
		} {
			var got []string
			var sizes []int
			cursor := ""
			for range 20 {
				p := getPage(t, s, tc.limit, cursor)
				got = append(got, p.IDs...)
				sizes = append(sizes, len(p.IDs))
				if !p.HasNextCursor {
					break
				}
				cursor = p.NextCursor
			}
			if !slices.Equal(sizes, tc.sizes) || !slices.Equal(got, ids) {
				t.Errorf("limit %d: page sizes %v, want %v; ids %v, want %v", tc.limit, sizes, tc.sizes, got, ids)
			}
		}
	})

	t.Run("case=default limit 100, limit 1000 accepted", func(t *testing.T) {
		t.Parallel()
		s := start(t, "")
		c := s.grpc()
		ids := createGRPC(t, c, 101)

		p := getPage(t, s, 0, "")
		if len(p.IDs) != 100 || !p.HasNextCursor || !slices.Equal(p.IDs, ids[:100]) {
			t.Fatalf("default page: %d users, nextCursor %v", len(p.IDs), p.HasNextCursor)
		}
		p2 := getPage(t, s, 0, p.NextCursor)
		if !slices.Equal(p2.IDs, ids[100:]) || p2.HasNextCursor {
			t.Fatalf("second default page: %v, nextCursor %v", p2.IDs, p2.HasNextCursor)
		}
		for _, l := range []int{101, 1000} {
			p := getPage(t, s, l, "")
			if !slices.Equal(p.IDs, ids) || p.HasNextCursor {
				t.Fatalf("limit=%d: %d users, nextCursor %v", l, len(p.IDs), p.HasNextCursor)
			}
		}
		resp, err := c.ListUsers(t.Context(), &usersv1.ListUsersRequest{})
		if err != nil || len(resp.GetData()) != 100 || resp.GetNextCursor() == "" {
			t.Fatalf("gRPC default page: %d users, next %q, %v", len(resp.GetData()), resp.GetNextCursor(), err)
		}
		l := int32(1000)
		resp, err = c.ListUsers(t.Context(), &usersv1.ListUsersRequest{Limit: &l})
		if err != nil || len(resp.GetData()) != 101 || resp.GetNextCursor() != "" {
			t.Fatalf("gRPC limit 1000: %d users, next %q, %v", len(resp.GetData()), resp.GetNextCursor(), err)
		}
	})

	t.Run("case=cursor survives a restart, not another database", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := start(t, dir)
		ids := createGRPC(t, s.grpc(), 6)
		two := int32(2)
		resp, err := s.grpc().ListUsers(t.Context(), &usersv1.ListUsersRequest{Limit: &two})
		if err != nil || resp.GetNextCursor() == "" {
			t.Fatalf("first page: %v %v", resp, err)
		}
		grpcCursor := resp.GetNextCursor()
		restCursor := getPage(t, s, 2, "").NextCursor
		if err := s.stop(); err != nil {
			t.Fatalf("graceful stop: %v\n%s", err, s.logs)
		}

		s2 := start(t, dir)
		resp, err = s2.grpc().ListUsers(t.Context(), &usersv1.ListUsersRequest{Limit: &two, Cursor: grpcCursor})
		if err != nil {
			t.Fatalf("gRPC cursor after restart: %v", err)
		}
		var got []string
		for _, u := range resp.GetData() {
			got = append(got, u.GetId())
		}
		if !slices.Equal(got, ids[2:4]) || resp.GetNextCursor() == "" {
			t.Fatalf("after restart: %v next %q, want %v", got, resp.GetNextCursor(), ids[2:4])
		}
		if p := getPage(t, s2, 2, restCursor); !slices.Equal(p.IDs, ids[2:4]) || !p.HasNextCursor {
			t.Fatalf("REST cursor after restart: %v", p.IDs)
		}

		// The same cursor means nothing to another database.
		other := start(t, "")
		createGRPC(t, other.grpc(), 6)
		wantError(t, other.do(t, "GET", "/v1/users?limit=2&cursor="+url.QueryEscape(restCursor), ""), 400, "BadRequest", "cursor@query")
		_, err = other.grpc().ListUsers(t.Context(), &usersv1.ListUsersRequest{Limit: &two, Cursor: grpcCursor})
		wantViolations(t, err, "cursor")
	})
}

func TestCrashDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	ws := runCrashWorkload(t, s, s.grpc())
	s2 := start(t, dir)
	ackedCreates, lostCreates := checkCrashWorkload(t, ws, s2)

	// The restarted server answers normally: reads everything, writes.
	all := listAllREST(t, s2, 1000)
	if n := len(all); n < ackedCreates || n > ackedCreates+lostCreates {
		t.Errorf("%d users listed after the crash, want %d acknowledged (+%d unacknowledged creates)", n, ackedCreates, lostCreates)
	}
	u := createUser(t, s2, `{"claims":{"after":"crash"}}`)
	id := u["id"].(string)
	if r := s2.do(t, "PUT", "/v1/users/"+id, `{"claims":{"v":1}}`); r.Status != http.StatusOK {
		t.Fatalf("update after the crash: %d %s", r.Status, r.Body)
	}
	if r := s2.do(t, "DELETE", "/v1/users/"+ws[0].users[0], ""); r.Status != http.StatusNoContent {
		t.Fatalf("delete after the crash: %d %s", r.Status, r.Body)
	}
}

// checkCrashWorkload checks on s2, a server on the database of the one
// runCrashWorkload killed, that every acknowledged write is there: each
// user holds its last acknowledged v, or the v that was in flight; and
// that searches agree with the users. It
// returns the number of creates acknowledged and of those that failed
// after the kill (which may or may not have been kept).
func checkCrashWorkload(t *testing.T, ws []crashWriter, s2 *server) (ackedCreates, lostCreates int) {
	t.Helper()
	// tracked is a user with its last acknowledged v (0 = the create) and
	// the v in flight when its writer stopped (-1 none).
	type tracked struct {
		id       string
		lastAck  int
		inFlight int
	}
	var owned [][]*tracked
	ackedUpdates, inFlight := 0, 0
	for w, wr := range ws {
		if wr.err != nil {
			t.Fatalf("writer %d failed before the kill (under 8 writers every valid request is acknowledged): %v", w, wr.err)
		}
		byID := map[string]*tracked{}
		var mine []*tracked
		for _, id := range wr.users {
			u := &tracked{id: id, inFlight: -1}
			byID[id] = u
			mine = append(mine, u)
		}
		for _, u := range wr.acked {
			byID[u.user].lastAck = u.n
		}
		if len(wr.attempted) > len(wr.acked) {
			last := wr.attempted[len(wr.attempted)-1]
			byID[last.user].inFlight = last.n
			inFlight++
		}
		owned = append(owned, mine)
		ackedCreates += len(wr.users)
		lostCreates += wr.lostCreates
		ackedUpdates += len(wr.acked)
	}
	t.Logf("killed after %d acknowledged updates; %d updates in flight; %d creates failed after the kill",
		ackedUpdates, inFlight, lostCreates)

	c2 := s2.grpc()
	appliedInFlight := 0
	for _, mine := range owned {
		for _, u := range mine {
			resp, err := c2.GetUser(t.Context(), &usersv1.GetUserRequest{Id: u.id})
			if err != nil {
				t.Errorf("acknowledged user %s after the crash: %v", u.id, err)
				continue
			}
			fields := resp.GetUser().GetClaims().GetFields()
			v := fields["v"].GetNumberValue()
			switch {
			case len(fields) != 1 || fields["v"].GetKind() == nil:
				t.Errorf("user %s: claims %v after the crash", u.id, resp.GetUser().GetClaims())
			case v == float64(u.lastAck):
			case u.inFlight >= 0 && v == float64(u.inFlight):
				appliedInFlight++
			default:
				t.Errorf("user %s: v=%v after the crash, want the acknowledged %d or the in-flight %d", u.id, v, u.lastAck, u.inFlight)
			}
		}
	}
	t.Logf("%d of %d in-flight updates were applied", appliedInFlight, inFlight)
	checkSearchAgrees(t, s2)
	return ackedCreates, lostCreates
}

func TestSecureDeleteLeavesNoTrace(t *testing.T) {
	sqliteOnly(t, "it scans SQLite's files for deleted bytes")
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)

	marker := "deleted-" + randomHex(12)   // claims of a deleted user
	marker2 := "replaced-" + randomHex(12) // claims an update replaced
	marker3 := "kept-" + randomHex(12)     // positive control
	subjectMarker := "subj-" + randomHex(12)

	// About 12 KiB made only of the marker, so that every page and
	// overflow page holding a piece of it holds a whole copy.
	blob := strings.Repeat(marker+" ", (12<<10)/(len(marker)+1))
	a := createUser(t, s, `{"claims":{"blob":"`+blob+`","tag":"`+marker+`"},"authenticationProvider":`+provider(subjectMarker)+`}`)
	b := createUser(t, s, `{"claims":{"note":"`+marker2+`"}}`)
	createUser(t, s, `{"claims":{"note":"`+marker3+`","blob":"`+strings.Repeat(marker3+" ", 100)+`"}}`)
	// Some unrelated traffic around the writes.
	for i := range 20 {
		createUser(t, s, `{"claims":{"filler":`+strconv.Itoa(i)+`}}`)
	}
	if r := s.do(t, "PUT", "/v1/users/"+b["id"].(string), `{"claims":{"note":"something else"}}`); r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if r := s.do(t, "DELETE", "/v1/users/"+a["id"].(string), ""); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s.logs)
	}

	found := map[string][]string{}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, filepath.Base(path))
		for _, m := range []string{marker, marker2, marker3, subjectMarker} {
			if bytes.Contains(data, []byte(m)) {
				found[m] = append(found[m], filepath.Base(path))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found[marker3]) == 0 {
		t.Fatalf("control marker of a kept user not found in %v: the scan reads the wrong files", files)
	}
	if f := found[marker]; len(f) > 0 {
		t.Errorf("claims of the deleted user remain in %v", f)
	}
	if f := found[subjectMarker]; len(f) > 0 {
		t.Errorf("provider link of the deleted user remains in %v", f)
	}
	if f := found[marker2]; len(f) > 0 {
		t.Errorf("claims replaced by an update remain in %v", f)
	}
	// Claims are never logged.
	for _, m := range []string{marker, marker2, marker3} {
		if strings.Contains(s.logs.String(), m) {
			t.Errorf("claims value %s appears in the server log", m)
		}
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	client := newRESTClient(t)

	const (
		goroutines = 50
		perRoutine = 20 // the bound: each goroutine creates at most this many
		termAfter  = 20 // acknowledged creates before SIGTERM
	)
	type outcome struct {
		ids      []string
		connErrs int
		shed     int
		bad      []string
	}
	var (
		acked   atomic.Int64
		trigger = make(chan struct{})
		release = make(chan struct{})
		out     = make([]outcome, goroutines)
		wg      sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &out[g]
			<-release
			for i := range perRoutine {
				r := tryREST(client, "POST", "http://"+s.HTTPAddr+"/v1/users", `{"claims":{"g":`+strconv.Itoa(g)+`,"i":`+strconv.Itoa(i)+`}}`)
				switch {
				case r.Err != nil:
					// Refused or cut off while shutting down: the request
					// was not acknowledged; the server is going away.
					o.connErrs++
					return
				case r.Status == http.StatusCreated:
					var u struct{ ID string }
					if err := json.Unmarshal(r.Body, &u); err != nil || u.ID == "" {
						o.bad = append(o.bad, "201 with body "+string(r.Body))
						return
					}
					o.ids = append(o.ids, u.ID)
					if acked.Add(1) == termAfter {
						close(trigger)
					}
				case r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") != "" &&
					bytes.Contains(r.Body, []byte(`"TooManyRequests"`)):
					// Load shedding beyond 8 writers is allowed (not a 5xx).
					o.shed++
				default:
					o.bad = append(o.bad, strconv.Itoa(r.Status)+" "+string(r.Body))
					return
				}
			}
		}()
	}
	close(release)
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-trigger:
	case <-allDone:
		t.Fatalf("all requests ended with only %d acknowledged: %+v", acked.Load(), out)
	case <-time.After(wait(2 * time.Minute)):
		t.Fatalf("only %d creates acknowledged after %v", acked.Load(), wait(2*time.Minute))
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-allDone:
	case <-time.After(2 * callTimeout):
		t.Fatal("requests did not end after SIGTERM")
	}
	select {
	case <-s.exited:
	case <-time.After(wait(30 * time.Second)):
		t.Fatalf("no exit %v after SIGTERM\n%s", wait(30*time.Second), s.logs)
	}
	if s.exitErr != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", s.exitErr, s.logs)
	}

	var ackedIDs []string
	connErrs, shed := 0, 0
	for g, o := range out {
		for _, b := range o.bad {
			t.Errorf("goroutine %d: %s", g, b)
		}
		ackedIDs = append(ackedIDs, o.ids...)
		connErrs += o.connErrs
		shed += o.shed
	}
	t.Logf("%d creates acknowledged (SIGTERM sent after %d), %d connection errors, %d shed", len(ackedIDs), termAfter, connErrs, shed)

	s2 := start(t, dir)
	stored := map[string]bool{}
	for _, id := range listAllREST(t, s2, 1000) {
		stored[id] = true
	}
	for _, id := range ackedIDs {
		if !stored[id] {
			t.Errorf("user %s was acknowledged with 201 but is gone after the restart", id)
		}
	}
	// A request the server read is finished and answered: a user stored
	// without a 201 means a committed create whose response was dropped
	// (in-flight requests cut off instead of finished). Requests refused
	// or closed before being read leave nothing behind.
	if len(stored) != len(ackedIDs) {
		t.Errorf("%d users stored but %d creates acknowledged (%d requests failed): committed writes went unanswered",
			len(stored), len(ackedIDs), connErrs)
	}
}
