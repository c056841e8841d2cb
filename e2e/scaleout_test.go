package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/store/postgres/pgtest"
)

// These tests run two usersd processes on one PostgreSQL database, as
// instances behind a load balancer would. They need a PostgreSQL server
// whatever USERSD_E2E_BACKEND says (pgtest skips without one, except
// under CI=true).

// pair starts two servers on one fresh PostgreSQL database.
func pair(t *testing.T) [2]*server {
	t.Helper()
	db := pgtest.Connect(t).Database(t)
	a := startDB(t, db)
	b := startDB(t, db) // migrations already applied: a plain start
	return [2]*server{a, b}
}

// call sends a REST request to s with the admin token from any goroutine;
// headers are name, value pairs.
func (s *server) call(client *http.Client, method, path, body string, headers ...string) restResult {
	return tryREST(client, method, "http://"+s.HTTPAddr+path, body, headers...)
}

// etagVersion is the version a strong ETag "<n>" carries.
func etagVersion(t *testing.T, etag string) int {
	t.Helper()
	s, err := strconv.Unquote(etag)
	if err != nil {
		t.Fatalf("ETag %q is not a quoted version", etag)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("ETag %q is not a version", etag)
	}
	return n
}

// TestScaleOutConditionalUpdates: clients read a user and update it with
// If-Match through either of two instances at random. Every attempt is a
// 200 or a 412; the 200s are exactly the version increments, so no update
// was lost; the user ends with the claims of the last 200.
func TestScaleOutConditionalUpdates(t *testing.T) {
	t.Parallel()
	srv := pair(t)
	client := newRESTClient(t)
	u := createUser(t, srv[0], `{"claims":{"writer":-1}}`)
	path := "/v1/users/" + u["id"].(string)

	const clients, rounds = 8, 25
	var (
		wins, losses atomic.Int64
		mu           sync.Mutex
		claimsOf     = map[string]string{} // the ETag a 200 returned → the claims it wrote
		errs         = make(chan error, clients)
		wg           sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := range rounds {
				got := srv[rng.IntN(2)].call(client, "GET", path, "")
				tag := got.Header.Get("ETag")
				if got.Err != nil || got.Status != http.StatusOK || tag == "" {
					errs <- fmt.Errorf("client %d GET: %v %d %q %s", c, got.Err, got.Status, tag, got.Body)
					return
				}
				claims := fmt.Sprintf(`{"writer":%d,"round":%d}`, c, i)
				put := srv[rng.IntN(2)].call(client, "PUT", path, `{"claims":`+claims+`}`, "If-Match", tag)
				switch {
				case put.Err != nil:
					errs <- fmt.Errorf("client %d PUT: %v", c, put.Err)
					return
				case put.Status == http.StatusOK:
					wins.Add(1)
					newTag := put.Header.Get("ETag")
					mu.Lock()
					if _, dup := claimsOf[newTag]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("two 200s returned ETag %s", newTag)
						return
					}
					claimsOf[newTag] = claims
					mu.Unlock()
				case put.Status == http.StatusPreconditionFailed && bytes.Contains(put.Body, []byte(`"PreconditionFailed"`)):
					losses.Add(1)
				default:
					errs <- fmt.Errorf("client %d PUT with If-Match: %d %s", c, put.Status, put.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	final := srv[1].do(t, "GET", path, "")
	version := etagVersion(t, final.Header.Get("ETag"))
	t.Logf("%d updates won, %d refused with 412", wins.Load(), losses.Load())
	if int64(version) != 1+wins.Load() {
		t.Fatalf("version %d after %d successful updates of version 1: an update was lost or counted twice", version, wins.Load())
	}
	if wins.Load()+losses.Load() != clients*rounds || wins.Load() == 0 {
		t.Fatalf("%d wins + %d losses, want %d attempts with some wins", wins.Load(), losses.Load(), clients*rounds)
	}
	want := claimsOf[final.Header.Get("ETag")]
	if got := final.JSON(t)["claims"]; !sameJSON(t, got, want) {
		t.Fatalf("final claims %v, want those of the last successful update %s", got, want)
	}
}

// sameJSON reports whether the decoded value v equals the JSON text want.
func sameJSON(t *testing.T, v any, want string) bool {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(v, w)
}

// TestScaleOutLastWriterWins: without If-Match, concurrent updates through
// both instances all succeed and each counts once in the version.
func TestScaleOutLastWriterWins(t *testing.T) {
	t.Parallel()
	srv := pair(t)
	client := newRESTClient(t)
	u := createUser(t, srv[0], `{}`)
	path := "/v1/users/" + u["id"].(string)
	const clients, rounds = 8, 10
	errs := make(chan error, clients*rounds)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				r := srv[(c+i)%2].call(client, "PUT", path, fmt.Sprintf(`{"claims":{"c":%d,"i":%d}}`, c, i))
				if r.Err != nil || r.Status != http.StatusOK {
					errs <- fmt.Errorf("unconditional PUT: %v %d %s", r.Err, r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := etagVersion(t, srv[0].do(t, "GET", path, "").Header.Get("ETag")); v != 1+clients*rounds {
		t.Fatalf("version %d after %d updates of version 1", v, clients*rounds)
	}
}

// TestScaleOutLinkRace: concurrent creates of one provider link through
// both instances: exactly one 201, the rest 409.
func TestScaleOutLinkRace(t *testing.T) {
	t.Parallel()
	srv := pair(t)
	client := newRESTClient(t)
	body := `{"authenticationProvider":` + provider("race-"+randomHex(6)) + `}`
	const attempts = 16
	statuses := make([]int, attempts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := srv[i%2].call(client, "POST", "/v1/users", body)
			if r.Err != nil {
				statuses[i] = -1
				return
			}
			statuses[i] = r.Status
		}()
	}
	close(start)
	wg.Wait()
	created, conflicts := 0, 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	if created != 1 || conflicts != attempts-1 {
		t.Fatalf("statuses %v: want exactly one 201 and %d 409s", statuses, attempts-1)
	}
}

// TestScaleOutCursors: a cursor issued by one instance continues the
// listing on the other.
func TestScaleOutCursors(t *testing.T) {
	t.Parallel()
	srv := pair(t)
	var want []string
	for i := range 5 {
		want = append(want, createUser(t, srv[i%2], fmt.Sprintf(`{"claims":{"i":%d}}`, i))["id"].(string))
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		p := getPage(t, srv[page%2], 2, cursor)
		got = append(got, p.IDs...)
		if !p.HasNextCursor {
			break
		}
		cursor = p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v across instances, want %v", got, want)
	}
}

// TestScaleOutCrash: one instance is killed with SIGKILL during writes;
// the other keeps serving throughout, and every write the killed one
// acknowledged is there afterwards.
func TestScaleOutCrash(t *testing.T) {
	t.Parallel()
	srv := pair(t)
	victim, survivor := srv[0], srv[1]
	client := newRESTClient(t)

	stop := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		// The survivor's own traffic: creates and reads, none may fail.
		n := 0
		for {
			select {
			case <-stop:
				served <- nil
				return
			default:
			}
			c := survivor.call(client, "POST", "/v1/users", `{"claims":{"survivor":true}}`)
			if c.Err != nil || c.Status != http.StatusCreated {
				served <- fmt.Errorf("survivor create %d: %v %d %s", n, c.Err, c.Status, c.Body)
				return
			}
			if g := survivor.call(client, "GET", "/v1/users?limit=5", ""); g.Err != nil || g.Status != http.StatusOK {
				served <- fmt.Errorf("survivor list %d: %v %d %s", n, g.Err, g.Status, g.Body)
				return
			}
			n++
		}
	}()
	ws := runCrashWorkload(t, victim, victim.grpc())
	// Serve a little after the kill too: the survivor's connections
	// must not have depended on the victim.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := survivor.grpc().ListUsers(t.Context(), &usersv1.ListUsersRequest{}); err != nil {
			t.Fatalf("survivor after the kill: %v", err)
		}
	}
	close(stop)
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	checkCrashWorkload(t, ws, survivor)
}
