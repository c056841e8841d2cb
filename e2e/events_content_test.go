package e2e

import (
	"bytes"
	"database/sql"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	_ "modernc.org/sqlite"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// What an event carries: no personal data, and the request id of its call.

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

	db, err := openStored(s.DB)
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
	// A SQLite row may hold a START and its outcome: two events.
	outcomeType := slices.Index(cols, "outcome_type")
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
		events := 1
		if outcomeType >= 0 && vals[outcomeType].String != "" {
			events = 2
		}
		stored += events
		for i, v := range vals {
			if strings.HasPrefix(v.String, "fence-") {
				fences += events
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
		t.Fatalf("%d events in the rows of events (%d of the fence), %d events listed: the scan reads the wrong table", stored, fences, listed)
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

	evFence(t, s, auditor) // every earlier request's events are listable after it
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

// openStored opens a server's database (stopped, or shared) for reading
// what it stored: its SQLite file read-only, or its PostgreSQL database.
func openStored(db string) (*sql.DB, error) {
	if onPostgres {
		return sql.Open("pgx", db)
	}
	return sql.Open("sqlite", "file:"+(&url.URL{Path: db}).EscapedPath()+"?mode=ro")
}
