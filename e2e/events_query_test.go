package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// Reading the trail: GET /v1/events filters and paging, and who may read it.

func TestEventsFiltersAndPaging(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "filters-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "filters-issuer", auth.RoleIssuer)

	// 30 calls with distinct request ids: 60 events, plus the fence's 2.
	var createRIDs, getRIDs, listRIDs, missRIDs, ids []string
	for i := range 10 {
		rid := evRID(fmt.Sprintf("create%02d", i))
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{"claims":{"i":`+strconv.Itoa(i)+`}}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		createRIDs = append(createRIDs, rid)
		ids = append(ids, r.JSON(t)["id"].(string))
	}
	for i, id := range ids {
		rid := evRID(fmt.Sprintf("get%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		getRIDs = append(getRIDs, rid)
	}
	for i := range 5 {
		rid := evRID(fmt.Sprintf("list%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users?limit=3", ""); r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		listRIDs = append(listRIDs, rid)
		rid = evRID(fmt.Sprintf("miss%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
			t.Fatalf("get missing: %d %s", r.Status, r.Body)
		}
		missRIDs = append(missRIDs, rid)
	}
	evFence(t, s, auditor)

	all := evAll(t, s, auditor, "", 1000)
	if len(all) != 62 {
		t.Fatalf("%d events, want 62 (30 calls and the fence): %v", len(all), evTypes(all))
	}
	count := map[string]int{}
	for _, e := range all {
		count[e.Type]++
		if e.ClientID != subject && e.ClientID != "e2e-admin" {
			t.Fatalf("event of client %q", e.ClientID)
		}
	}
	wantCount := map[string]int{
		"USER_CREATE_START": 10, "USER_CREATE_SUCCESS": 10,
		"USER_RETRIEVE_START": 16, "USER_RETRIEVE_SUCCESS": 10, "USER_RETRIEVE_FAIL": 6,
		"USER_RETRIEVE_LIST_START": 5, "USER_RETRIEVE_LIST_SUCCESS": 5,
	}
	if !maps.Equal(count, wantCount) {
		t.Fatalf("events by type %v, want %v", count, wantCount)
	}
	// Without a filter and with the default limit, one page of all 62.
	if p := evList(t, s, auditor, ""); p.HasNext || !slices.Equal(evIDs(p.Events), evIDs(all)) {
		t.Fatalf("default listing: %d events, next %v", len(p.Events), p.HasNext)
	}

	// filtered is what a filter must return: the matching events of all,
	// in the same order.
	filtered := func(pred func(evEvent) bool) []string {
		var out []string
		for _, e := range all {
			if pred(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	check := func(t *testing.T, query string, want []string) {
		t.Helper()
		for _, limit := range []int{1000, 4} {
			if got := evIDs(evAll(t, s, auditor, query, limit)); !slices.Equal(got, want) {
				t.Fatalf("?%s (limit %d): %d events %v, want %d %v", query, limit, len(got), got, len(want), want)
			}
		}
	}
	ofType := func(types ...string) func(evEvent) bool {
		return func(e evEvent) bool { return slices.Contains(types, e.Type) }
	}
	everything := func(evEvent) bool { return true }
	byRID := map[string][]evEvent{}
	for _, e := range all {
		byRID[e.RequestID] = append(byRID[e.RequestID], e)
	}
	ts := func(e evEvent) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, e.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	newer, older := all[10], all[45]
	const micros = "2006-01-02T15:04:05.000000Z07:00"

	for _, tc := range []struct {
		name, query string
		pred        func(evEvent) bool
	}{
		{"types", "types=USER_CREATE_SUCCESS,USER_RETRIEVE_FAIL", ofType("USER_CREATE_SUCCESS", "USER_RETRIEVE_FAIL")},
		{"types repeated", "types=USER_CREATE_SUCCESS,USER_CREATE_SUCCESS", ofType("USER_CREATE_SUCCESS")},
		{"unknown category or a type", "categories=nope&types=USER_CREATE_SUCCESS", ofType("USER_CREATE_SUCCESS")},
		{"category", "categories=user", everything},
		{"category or type", "categories=user&types=USER_CREATE_SUCCESS", everything},
		{"categories repeated or type", "categories=user,user,nope&types=USER_CREATE_SUCCESS,USER_DELETE_FAIL", everything},
		{"unknown category", "categories=nope", func(evEvent) bool { return false }},
		{"unknown type", "types=USER_DELETE_SUCCESS", func(evEvent) bool { return false }},
		{"ids", "ids=" + all[3].ID + "," + all[50].ID, func(e evEvent) bool { return e.ID == all[3].ID || e.ID == all[50].ID }},
		{"ids and type", "ids=" + all[3].ID + "," + all[50].ID + "&types=" + all[50].Type, func(e evEvent) bool { return e.ID == all[50].ID }},
		{"unknown id", "ids=" + missingID, func(evEvent) bool { return false }},
		{"request ids", "requestIds=" + createRIDs[2] + "," + missRIDs[4], func(e evEvent) bool { return e.RequestID == createRIDs[2] || e.RequestID == missRIDs[4] }},
		{"request id and type", "requestIds=" + createRIDs[2] + "&types=USER_CREATE_START", func(e evEvent) bool {
			return e.RequestID == createRIDs[2] && e.Type == "USER_CREATE_START"
		}},
		{"request id and unknown category", "requestIds=" + createRIDs[2] + "&categories=nope", func(evEvent) bool { return false }},
		{"unknown request id", "requestIds=nobody-sent-this", func(evEvent) bool { return false }},
		{"all request ids", "requestIds=" + strings.Join(slices.Concat(createRIDs, getRIDs, listRIDs, missRIDs), ","), func(e evEvent) bool { return !strings.HasPrefix(e.RequestID, "fence-") }},
		{"date range", "dateFrom=" + older.Timestamp + "&dateTo=" + newer.Timestamp, func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"one millisecond", "dateFrom=" + newer.Timestamp + "&dateTo=" + newer.Timestamp, func(e evEvent) bool { return e.Timestamp == newer.Timestamp }},
		{"date from", "dateFrom=" + older.Timestamp, func(e evEvent) bool { return e.Timestamp >= older.Timestamp }},
		{"date to", "dateTo=" + newer.Timestamp, func(e evEvent) bool { return e.Timestamp <= newer.Timestamp }},
		{"date range with offsets", "dateFrom=" + url.QueryEscape(ts(older).In(time.FixedZone("", 5*3600+1800)).Format("2006-01-02T15:04:05.000Z07:00")) +
			"&dateTo=" + url.QueryEscape(ts(newer).In(time.FixedZone("", -8*3600)).Format("2006-01-02T15:04:05.000Z07:00")), func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"date range within milliseconds", "dateFrom=" + ts(older).Add(500*time.Microsecond).Format(micros) +
			"&dateTo=" + ts(newer).Add(500*time.Microsecond).Format(micros), func(e evEvent) bool {
			return e.Timestamp > older.Timestamp && e.Timestamp <= newer.Timestamp
		}},
		{"seconds only", "dateFrom=" + ts(all[61]).Truncate(time.Second).Format(time.RFC3339), everything},
		{"date range and types", "dateFrom=" + older.Timestamp + "&dateTo=" + newer.Timestamp + "&types=USER_RETRIEVE_START", func(e evEvent) bool {
			return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp && e.Type == "USER_RETRIEVE_START"
		}},
		{"future", "dateFrom=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), func(evEvent) bool { return false }},
		{"past", "dateTo=2000-01-01T00:00:00Z", func(evEvent) bool { return false }},
	} {
		t.Run("filter="+tc.name, func(t *testing.T) {
			want := filtered(tc.pred)
			check(t, tc.query, want)
			if len(want) == 0 {
				p := evList(t, s, auditor, tc.query)
				if p.HasNext || !bytes.Equal(p.Raw, []byte(`{"data":[]}`)) {
					t.Fatalf("?%s matching nothing: %s, want {\"data\":[]}", tc.query, p.Raw)
				}
			}
		})
	}
	if n := len(filtered(func(e evEvent) bool { return e.Timestamp >= older.Timestamp && e.Timestamp <= newer.Timestamp })); n < 36 {
		t.Fatalf("the date range selects %d events, want at least 36", n)
	}

	t.Run("case=ids in upper case", func(t *testing.T) {
		// Ids are UUIDs, whose letters may be of either case (§3). The
		// server may refuse an upper-case id with ids@query, or find the
		// event; accepting it and finding nothing is a bug.
		r := evDo(t, s, auditor, "", "GET", "/v1/events?ids="+strings.ToUpper(all[50].ID), "")
		if r.Status == http.StatusBadRequest {
			wantError(t, r, 400, "BadRequest", "ids@query")
			return
		}
		p := evParse(t, "upper-case ids", r.Body)
		if len(p.Events) == 1 && p.Events[0].ID == all[50].ID {
			return
		}
		t.Fatalf("ids=<UPPER-CASE UUID> is accepted but does not find its event: %s", r.Body)
	})

	t.Run("case=paging", func(t *testing.T) {
		for _, limit := range []int{1, 2, 7, 31, 61, 62, 63} {
			if got := evIDs(evAll(t, s, auditor, "", limit)); !slices.Equal(got, evIDs(all)) {
				t.Fatalf("limit %d: %d events, want %d", limit, len(got), len(all))
			}
		}
		// 20 events of the creates: full last pages have no nextCursor.
		q := "requestIds=" + strings.Join(createRIDs, ",")
		for limit, pages := range map[int]int{5: 4, 10: 2, 20: 1, 19: 2, 21: 1} {
			n, cursor := 0, ""
			for {
				query := q + "&limit=" + strconv.Itoa(limit)
				if cursor != "" {
					query += "&cursor=" + url.QueryEscape(cursor)
				}
				p := evList(t, s, auditor, query)
				n++
				if !p.HasNext {
					break
				}
				cursor = p.NextCursor
				if n > pages {
					break
				}
			}
			if n != pages {
				t.Fatalf("limit %d over 20 events: %d pages, want %d", limit, n, pages)
			}
		}
	})

	t.Run("case=cursor is stable while events are added", func(t *testing.T) {
		first := evList(t, s, auditor, "limit=10")
		if !first.HasNext || !slices.Equal(evIDs(first.Events), evIDs(all[:10])) {
			t.Fatalf("first page: %v", evIDs(first.Events))
		}
		// New events, newer than all: they must not show up behind the cursor.
		rid := evRID("late")
		if r := evDo(t, s, token, rid, "POST", "/v1/users", `{}`); r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if evs := evPoll(t, s, auditor, rid, 2); len(evs) != 2 {
			t.Fatalf("the late create's events are not listed: %+v", evs)
		}
		got := evIDs(evAll(t, s, auditor, "cursor="+url.QueryEscape(first.NextCursor), 10))
		if !slices.Equal(got, evIDs(all[10:])) {
			t.Fatalf("after the cursor: %d events, want %d", len(got), len(all)-10)
		}
		now := evList(t, s, auditor, "limit=2")
		if evTypes(now.Events)[0] != "USER_CREATE_SUCCESS" && evTypes(now.Events)[0] != "USER_CREATE_START" {
			t.Fatalf("newest events %v", evTypes(now.Events))
		}
	})

	t.Run("case=gRPC", func(t *testing.T) {
		c := evGRPC(t, s, auditor)
		two := int32(2)
		resp, err := c.ListEvents(t.Context(), &usersv1.ListEventsRequest{Limit: &two, RequestIds: createRIDs[0] + "," + getRIDs[0]})
		if err != nil {
			t.Fatal(err)
		}
		resp2, err := c.ListEvents(t.Context(), &usersv1.ListEventsRequest{Limit: &two, RequestIds: createRIDs[0] + "," + getRIDs[0], Cursor: resp.GetNextCursor()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.NextCursor == nil || resp2.NextCursor != nil {
			t.Fatalf("gRPC paging cursors %v %v", resp.NextCursor, resp2.NextCursor)
		}
		var got []string
		for _, e := range slices.Concat(resp.GetData(), resp2.GetData()) {
			got = append(got, e.GetId())
			if e.GetData().GetKind() == nil {
				t.Fatalf("gRPC event without data: %v", e)
			}
			if _, ok := e.GetData().GetKind().(*structpb.Value_NullValue); !ok {
				t.Fatalf("gRPC event data %v, want null", e.GetData())
			}
		}
		want := evIDs(append(slices.Clone(byRID[createRIDs[0]]), byRID[getRIDs[0]]...))
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Fatalf("gRPC listing %v, want %v", got, want)
		}
		_, err = c.ListEvents(t.Context(), &usersv1.ListEventsRequest{RequestIds: "bad id", DateFrom: "yesterday"})
		wantViolations(t, err, "request_ids", "date_from")
	})

	t.Run("case=invalid filters", func(t *testing.T) {
		two := getPage(t, s, 2, "")
		if !two.HasNextCursor {
			t.Fatal("no ListUsers cursor")
		}
		first := evList(t, s, auditor, "limit=1")
		if !first.HasNext {
			t.Fatalf("limit=1 over %d+ events has no nextCursor: %s", len(all), first.Raw)
		}
		evCursor := first.NextCursor
		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprintf("r%d", i)
		}
		for _, tc := range []struct {
			query   string
			details []string
		}{
			{"limit=0", []string{"limit@query"}},
			{"limit=abc", []string{"limit@query"}},
			{"limit=-1", []string{"limit@query"}},
			{"limit=1001", []string{"limit@query"}},
			{"limit=1.5", []string{"limit@query"}},
			{"limit=1&limit=2", []string{"limit@query"}},
			{"cursor=garbage", []string{"cursor@query"}},
			{"cursor=" + url.QueryEscape(two.NextCursor), []string{"cursor@query"}},
			{"cursor=" + url.QueryEscape(evCursor[:len(evCursor)-2]), []string{"cursor@query"}},
			{"ids=not-a-uuid", []string{"ids@query"}},
			{"ids=" + all[0].ID + ",not-a-uuid", []string{"ids@query"}},
			{"ids=" + all[0].ID + ",", []string{"ids@query"}},
			{"ids=%7B" + all[0].ID + "%7D", []string{"ids@query"}},
			{"dateFrom=yesterday", []string{"dateFrom@query"}},
			{"dateTo=2026-13-01T00:00:00Z", []string{"dateTo@query"}},
			{"dateFrom=2026-01-01", []string{"dateFrom@query"}},
			{"requestIds=bad%20id", []string{"requestIds@query"}},
			{"requestIds=" + strings.Repeat("a", 129), []string{"requestIds@query"}},
			{"requestIds=" + strings.Join(many, ","), []string{"requestIds@query"}},
			{"types=bad%20type", []string{"types@query"}},
			{"categories=" + strings.Repeat("c", 65), []string{"categories@query"}},
			{"limit=0&ids=x&dateFrom=y&cursor=garbage", []string{"limit@query", "ids@query", "dateFrom@query", "cursor@query"}},
		} {
			t.Run("query="+tc.query[:min(len(tc.query), 40)], func(t *testing.T) {
				r := evDo(t, s, auditor, "", "GET", "/v1/events?"+tc.query, "")
				wantError(t, r, 400, "BadRequest", tc.details...)
			})
		}
		// An events cursor means nothing to the users listing either.
		wantError(t, s.do(t, "GET", "/v1/users?cursor="+url.QueryEscape(evCursor), ""), 400, "BadRequest", "cursor@query")
		// dateFrom after dateTo: one detail, on either bound.
		r := evDo(t, s, auditor, "", "GET", "/v1/events?dateFrom="+newer.Timestamp+"&dateTo="+older.Timestamp, "")
		if newer.Timestamp > older.Timestamp {
			e := wantError(t, r, 400, "BadRequest")
			if len(e.Details) != 1 || e.Details[0].Location != "query" || (e.Details[0].Param != "dateTo" && e.Details[0].Param != "dateFrom") {
				t.Fatalf("dateFrom after dateTo: %s", r.Body)
			}
		}
	})
}

func TestEventsRoles(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, auditorSubject := evToken(t, "roles-auditor", auth.RoleAuditor)
	admin, _ := evToken(t, "roles-admin", auth.RoleAdmin)
	issuer, _ := evToken(t, "roles-issuer", auth.RoleIssuer)
	nobody, _ := evToken(t, "roles-none", "guest")
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)

	for _, tok := range []string{auditor, admin} {
		if r := evDo(t, s, tok, "", "GET", "/v1/events", ""); r.Status != http.StatusOK {
			t.Fatalf("GET /v1/events: %d %s", r.Status, r.Body)
		}
		if _, err := evGRPC(t, s, tok).ListEvents(t.Context(), &usersv1.ListEventsRequest{}); err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
	}
	for _, tok := range []string{issuer, nobody} {
		wantError(t, evDo(t, s, tok, "", "GET", "/v1/events", ""), 403, "Forbidden")
		wantError(t, evDo(t, s, tok, "", "GET", "/v1/events?limit=abc", ""), 403, "Forbidden")
		_, err := evGRPC(t, s, tok).ListEvents(t.Context(), &usersv1.ListEventsRequest{})
		wantCode(t, err, codes.PermissionDenied)
	}
	wantError(t, evDo(t, s, "", "", "GET", "/v1/events", ""), 401, "Unauthorized")

	opOf := map[string]string{} // request id → operation
	for _, req := range []struct{ method, path, body, op string }{
		{"POST", "/v1/users", `{"claims":{}}`, "USER_CREATE"},
		{"GET", "/v1/users/" + id, "", "USER_RETRIEVE"},
		{"PUT", "/v1/users/" + id, `{"claims":{"b":2}}`, "USER_UPDATE"},
		{"DELETE", "/v1/users/" + id, "", "USER_DELETE"},
		{"GET", "/v1/users", "", "USER_RETRIEVE_LIST"},
	} {
		rid := evRID("auditor")
		wantError(t, evDo(t, s, auditor, rid, req.method, req.path, req.body), 403, "Forbidden")
		opOf[rid] = req.op
	}
	ac := evGRPC(t, s, auditor)
	ctxRID := evRID("auditor-grpc")
	_, err := ac.UpdateUser(evCtx(t, ctxRID), &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claimsV(3)}})
	wantCode(t, err, codes.PermissionDenied)
	opOf[ctxRID] = "USER_UPDATE"
	// Nothing changed.
	if r := s.do(t, "GET", "/v1/users/"+id, ""); r.Status != 200 || !strings.Contains(string(r.Body), `"claims":{"a":1}`) {
		t.Fatalf("after the refused calls: %d %s", r.Status, r.Body)
	}
	evFence(t, s, auditor)
	for rid, op := range opOf {
		_, fail := evWantPair(t, evByRequest(t, s, auditor, rid), rid, auditorSubject, op, "FAIL")
		if fail.Metadata["code"] != "Forbidden" {
			t.Fatalf("request %s: FAIL %v", rid, fail.Metadata)
		}
	}
}
