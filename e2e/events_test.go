package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/rpcerr"
)

// What each call records: the START and outcome pair of every operation on
// both transports, failures, the events flushed at shutdown, and the
// gateway's mark ignored from native clients.

func TestEventsPairsPerOperation(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "pairs-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "pairs-issuer", auth.RoleIssuer)

	// want is what the events of one request must be once all are written.
	type want struct {
		rid, op     string
		successMeta map[string]any
	}
	var wants []want
	expect := func(rid, op string, meta map[string]any) {
		wants = append(wants, want{rid, op, meta})
	}

	t.Run("transport=REST", func(t *testing.T) {
		rid := evRID("rest-create")
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{"claims":{"k":"v"}}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		evWantEcho(t, r, rid)
		id := r.JSON(t)["id"].(string)
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", id)
		expect(rid, "USER_CREATE", map[string]any{"userId": id})

		rid = evRID("rest-get")
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		expect(rid, "USER_RETRIEVE", map[string]any{"userId": id})

		rid = evRID("rest-update")
		if r := evDo(t, s, token, rid, "PUT", "/v1/users/"+id, `{"claims":{"k":"w"}}`); r.Status != http.StatusOK {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		// An update that changes nothing still succeeds, with its event.
		rid = evRID("rest-update-empty")
		if r := evDo(t, s, token, rid, "PUT", "/v1/users/"+id, `{}`); r.Status != http.StatusOK {
			t.Fatalf("empty update: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		rid = evRID("rest-list")
		r = evDo(t, s, token, rid, "GET", "/v1/users?limit=5", "")
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		n := len(r.JSON(t)["data"].([]any))
		if n == 0 {
			t.Fatal("list is empty")
		}
		expect(rid, "USER_RETRIEVE_LIST", map[string]any{"limit": 5, "entriesCount": n})

		rid = evRID("rest-delete")
		if r := evDo(t, s, token, rid, "DELETE", "/v1/users/"+id, ""); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_DELETE", id)
		expect(rid, "USER_DELETE", map[string]any{"userId": id})
	})

	t.Run("transport=gRPC", func(t *testing.T) {
		c := evGRPC(t, s, token)
		var hdr metadata.MD
		rid := evRID("grpc-create")
		created, err := c.CreateUser(evCtx(t, rid), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claimsV(1)}}, grpc.Header(&hdr))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		evWantHeaderRID(t, hdr, rid)
		id := created.GetUser().GetId()
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", id)
		expect(rid, "USER_CREATE", map[string]any{"userId": id})

		rid = evRID("grpc-get")
		if _, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: id}); err != nil {
			t.Fatalf("get: %v", err)
		}
		expect(rid, "USER_RETRIEVE", map[string]any{"userId": id})

		rid = evRID("grpc-update")
		if _, err := c.UpdateUser(evCtx(t, rid), &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claimsV(2)}, UpdateMask: mask("claims")}); err != nil {
			t.Fatalf("update: %v", err)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_UPDATE", id)
		expect(rid, "USER_UPDATE", map[string]any{"userId": id})

		rid = evRID("grpc-list")
		list, err := c.ListUsers(evCtx(t, rid), &usersv1.ListUsersRequest{}) // default limit
		if err != nil || len(list.GetData()) == 0 {
			t.Fatalf("list: %v %v", list, err)
		}
		expect(rid, "USER_RETRIEVE_LIST", map[string]any{"limit": 100, "entriesCount": len(list.GetData())})

		rid = evRID("grpc-delete")
		if _, err := c.DeleteUser(evCtx(t, rid), &usersv1.DeleteUserRequest{Id: id}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_DELETE", id)
		expect(rid, "USER_DELETE", map[string]any{"userId": id})
	})

	// START and read events within a bounded time (the fence's own wait,
	// queued after all of them); then exact pairs.
	evFence(t, s, auditor)
	for _, w := range wants {
		startEv, success := evWantPair(t, evByRequest(t, s, auditor, w.rid), w.rid, subject, w.op, "SUCCESS")
		evWantMeta(t, success, w.successMeta)
		evWantMetaWithin(t, startEv, w.successMeta)
	}
	if len(wants) != 11 {
		t.Fatalf("%d requests checked, want 11", len(wants))
	}
}

func TestEventsFailPairs(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, auditorSubject := evToken(t, "fail-auditor", auth.RoleAuditor)
	admin, adminSubject := evToken(t, "fail-admin", auth.RoleAdmin)
	issuer, issuerSubject := evToken(t, "fail-issuer", auth.RoleIssuer)
	expired, err := auth.IssueHS256(testSecret, auth.TokenSpec{Subject: "expired-" + randomHex(4), Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := auth.IssueHS256([]byte("another-secret-0123456789abcdef-0123456789"), auth.TokenSpec{Subject: "foreign-" + randomHex(4), Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	existing := createUser(t, s, `{"claims":{"a":1},"authenticationProvider":`+provider("linked-"+randomHex(6))+`}`)
	id := existing["id"].(string)
	linked := existing["authenticationProvider"].(map[string]any)["subjectId"].(string)
	other := createUser(t, s, `{"claims":{"b":2}}`)["id"].(string)
	big := `{"claims":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`

	// A case is one request; its events must be exactly START then FAIL
	// with code (or none when code is "").
	type failCase struct {
		name, rid  string
		client, op string
		code       string
		userID     string // metadata.userId the FAIL must carry ("" = not checked)
		noUserID   bool   // the FAIL must carry no userId
		anyUserID  bool   // the FAIL may carry a userId (not checked)
		pathUserID string // a userId, when present, must be this one
	}
	var cases []failCase
	rest := func(c failCase, token, method, path, body string, status int, code string, details []string, headers ...string) {
		t.Helper()
		c.rid = evRID("fail")
		r := evDo(t, s, token, c.rid, method, path, body, headers...)
		wantError(t, r, status, code, details...)
		evWantEcho(t, r, c.rid)
		if status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: 401 without WWW-Authenticate", c.name)
		}
		cases = append(cases, c)
	}
	grpcCall := func(c failCase, token string, want codes.Code, call func(usersv1.UserServiceClient, context.Context, ...grpc.CallOption) error) {
		t.Helper()
		c.rid = evRID("fail-grpc")
		var hdr metadata.MD
		err := call(evGRPC(t, s, token), evCtx(t, c.rid), grpc.Header(&hdr))
		wantCode(t, err, want)
		evWantHeaderRID(t, hdr, c.rid)
		cases = append(cases, c)
	}

	// 404 of a missing user: FAIL NotFound naming it.
	rest(failCase{name: "REST get missing", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID},
		admin, "GET", "/v1/users/"+missingID, "", 404, "NotFound", nil)
	rest(failCase{name: "REST get missing, upper case id", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID},
		admin, "GET", "/v1/users/"+strings.ToUpper(missingID), "", 404, "NotFound", nil)
	rest(failCase{name: "REST delete missing", client: adminSubject, op: "USER_DELETE", code: "NotFound", userID: missingID},
		admin, "DELETE", "/v1/users/"+missingID, "", 404, "NotFound", nil)
	rest(failCase{name: "REST update missing", client: issuerSubject, op: "USER_UPDATE", code: "NotFound", userID: missingID},
		issuer, "PUT", "/v1/users/"+missingID, `{"claims":{"a":2}}`, 404, "NotFound", nil)
	// 400 found by the service.
	rest(failCase{name: "REST get bad id", client: adminSubject, op: "USER_RETRIEVE", code: "BadRequest", noUserID: true},
		admin, "GET", "/v1/users/not-a-uuid", "", 400, "BadRequest", []string{"id@params"})
	rest(failCase{name: "REST delete bad id", client: adminSubject, op: "USER_DELETE", code: "BadRequest", noUserID: true},
		admin, "DELETE", "/v1/users/"+strings.ReplaceAll(missingID, "-", ""), "", 400, "BadRequest", []string{"id@params"})
	rest(failCase{name: "REST create with bad provider", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"authenticationProvider":{"providerId":"x","url":"ftp://x","subjectId":"s"}}`, 400, "BadRequest",
		[]string{"authenticationProvider.providerId@body", "authenticationProvider.url@body"})
	rest(failCase{name: "REST list limit 0", client: adminSubject, op: "USER_RETRIEVE_LIST", code: "BadRequest"},
		admin, "GET", "/v1/users?limit=0", "", 400, "BadRequest", []string{"limit@query"})
	// 400 refused by the gateway on HTTP grounds: still START and FAIL.
	rest(failCase{name: "REST create malformed JSON", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":`, 400, "BadRequest", nil)
	rest(failCase{name: "REST create unknown field", client: adminSubject, op: "USER_CREATE", code: "BadRequest", noUserID: true},
		admin, "POST", "/v1/users", `{"nope":1}`, 400, "BadRequest", []string{"nope@body"})
	rest(failCase{name: "REST update unknown field", client: adminSubject, op: "USER_UPDATE", code: "BadRequest", pathUserID: id},
		admin, "PUT", "/v1/users/"+id, `{"claims":{},"nope":1}`, 400, "BadRequest", []string{"nope@body"})
	rest(failCase{name: "REST list limit abc", client: adminSubject, op: "USER_RETRIEVE_LIST", code: "BadRequest"},
		admin, "GET", "/v1/users?limit=abc", "", 400, "BadRequest", []string{"limit@query"})
	rest(failCase{name: "REST create 413", client: adminSubject, op: "USER_CREATE", code: "PayloadTooLarge", noUserID: true},
		admin, "POST", "/v1/users", big, 413, "PayloadTooLarge", nil)
	rest(failCase{name: "REST update 413", client: issuerSubject, op: "USER_UPDATE", code: "PayloadTooLarge", pathUserID: id},
		issuer, "PUT", "/v1/users/"+id, big, 413, "PayloadTooLarge", nil)
	rest(failCase{name: "REST create 415", client: adminSubject, op: "USER_CREATE", code: "UnsupportedMediaType", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":{}}`, 415, "UnsupportedMediaType", nil, "Content-Type", "text/plain")
	rest(failCase{name: "REST create 415 gzip", client: adminSubject, op: "USER_CREATE", code: "UnsupportedMediaType", noUserID: true},
		admin, "POST", "/v1/users", `{"claims":{}}`, 415, "UnsupportedMediaType", nil, "Content-Encoding", "gzip")
	// 409 link conflicts.
	rest(failCase{name: "REST create conflict", client: adminSubject, op: "USER_CREATE", code: "Conflict", anyUserID: true},
		admin, "POST", "/v1/users", `{"authenticationProvider":`+provider(linked)+`}`, 409, "Conflict", nil)
	rest(failCase{name: "REST update conflict", client: adminSubject, op: "USER_UPDATE", code: "Conflict", userID: other},
		admin, "PUT", "/v1/users/"+other, `{"authenticationProvider":`+provider(linked)+`}`, 409, "Conflict", nil)
	// 403: a valid token without the role records START and FAIL.
	rest(failCase{name: "REST auditor creates", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true},
		auditor, "POST", "/v1/users", `{"claims":{}}`, 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor gets", client: auditorSubject, op: "USER_RETRIEVE", code: "Forbidden", pathUserID: id},
		auditor, "GET", "/v1/users/"+id, "", 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor lists", client: auditorSubject, op: "USER_RETRIEVE_LIST", code: "Forbidden"},
		auditor, "GET", "/v1/users", "", 403, "Forbidden", nil)
	rest(failCase{name: "REST auditor malformed body", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true},
		auditor, "POST", "/v1/users", `{"claims":`, 403, "Forbidden", nil)
	// No valid token: no events at all.
	rest(failCase{name: "REST no token"}, "", "GET", "/v1/users", "", 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, create"}, "", "POST", "/v1/users", `{"claims":{}}`, 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, malformed body"}, "", "POST", "/v1/users", `{"claims":`, 401, "Unauthorized", nil)
	rest(failCase{name: "REST no token, 413"}, "", "POST", "/v1/users", big, 401, "Unauthorized", nil)
	rest(failCase{name: "REST garbage token"}, "", "GET", "/v1/users/"+id, "", 401, "Unauthorized", nil, "Authorization", "Bearer garbage")
	rest(failCase{name: "REST expired token"}, expired, "DELETE", "/v1/users/"+id, "", 401, "Unauthorized", nil)
	rest(failCase{name: "REST foreign token"}, foreign, "PUT", "/v1/users/"+id, `{}`, 401, "Unauthorized", nil)
	// The events query records nothing, whatever its outcome.
	cases = append(cases, func() failCase {
		c := failCase{name: "REST list events", rid: evRID("events-query")}
		r := evDo(t, s, auditor, c.rid, "GET", "/v1/events", "")
		if r.Status != 200 {
			t.Fatalf("list events: %d %s", r.Status, r.Body)
		}
		evWantEcho(t, r, c.rid)
		return c
	}())
	rest(failCase{name: "REST list events by issuer"}, issuer, "GET", "/v1/events", "", 403, "Forbidden", nil)
	rest(failCase{name: "REST list events bad filter"}, admin, "GET", "/v1/events?ids=x", "", 400, "BadRequest", []string{"ids@query"})
	rest(failCase{name: "REST list events no token"}, "", "GET", "/v1/events", "", 401, "Unauthorized", nil)

	// gRPC.
	grpcCall(failCase{name: "gRPC get missing", client: adminSubject, op: "USER_RETRIEVE", code: "NotFound", userID: missingID}, admin, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: missingID}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC delete missing", client: issuerSubject, op: "USER_DELETE", code: "NotFound", userID: missingID}, issuer, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: missingID}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC update missing", client: adminSubject, op: "USER_UPDATE", code: "NotFound", userID: missingID}, admin, codes.NotFound,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: missingID, User: &usersv1.User{Claims: claimsV(1)}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC update bad id", client: adminSubject, op: "USER_UPDATE", code: "BadRequest", noUserID: true}, admin, codes.InvalidArgument,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: "nope", User: &usersv1.User{Claims: claimsV(1)}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC create conflict", client: adminSubject, op: "USER_CREATE", code: "Conflict", anyUserID: true}, admin, codes.AlreadyExists,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{
				ProviderId: providerA, Url: "https://example-university.au.auth0.com", SubjectId: linked}}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC auditor creates", client: auditorSubject, op: "USER_CREATE", code: "Forbidden", noUserID: true}, auditor, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC auditor deletes", client: auditorSubject, op: "USER_DELETE", code: "Forbidden", pathUserID: id}, auditor, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC no token"}, "", codes.Unauthenticated,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC garbage token"}, "garbage", codes.Unauthenticated,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC list events"}, auditor, codes.OK,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.ListEvents(ctx, &usersv1.ListEventsRequest{}, o...)
			return err
		})
	grpcCall(failCase{name: "gRPC list events by issuer"}, issuer, codes.PermissionDenied,
		func(c usersv1.UserServiceClient, ctx context.Context, o ...grpc.CallOption) error {
			_, err := c.ListEvents(ctx, &usersv1.ListEventsRequest{}, o...)
			return err
		})

	evFence(t, s, auditor)
	for _, c := range cases {
		t.Run("case="+c.name, func(t *testing.T) {
			evs := evByRequest(t, s, auditor, c.rid)
			if c.code == "" {
				if len(evs) != 0 {
					t.Fatalf("request %s recorded %d events, want none: %+v", c.rid, len(evs), evs)
				}
				return
			}
			startEv, fail := evWantPair(t, evs, c.rid, c.client, c.op, "FAIL")
			if got := fail.Metadata["code"]; got != c.code {
				t.Fatalf("FAIL code %v, want %s", got, c.code)
			}
			got, has := fail.Metadata["userId"]
			switch {
			case c.userID != "" && got != c.userID:
				t.Fatalf("FAIL metadata.userId %v, want %s", got, c.userID)
			case c.noUserID && has:
				t.Fatalf("FAIL metadata.userId %v, want none", got)
			case c.pathUserID != "" && has && got != c.pathUserID:
				t.Fatalf("FAIL metadata.userId %v, want %s or none", got, c.pathUserID)
			case c.userID == "" && !c.anyUserID && c.pathUserID == "" && has:
				t.Fatalf("FAIL metadata.userId %v, want none", got)
			}
			allowed := maps.Clone(fail.Metadata)
			delete(allowed, "code")
			evWantMetaWithin(t, startEv, allowed)
		})
	}
}

func TestEventsGracefulShutdownFlushes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	token, subject := evToken(t, "flush-issuer", auth.RoleIssuer)
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	c := evGRPC(t, s, token)

	type sent struct{ rid, op, outcome string }
	var calls []sent
	for i := range 20 {
		rid := evRID(fmt.Sprintf("flush-rest%02d", i))
		if r := evDo(t, s, token, rid, "GET", "/v1/users/"+id, ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
		rid = evRID(fmt.Sprintf("flush-grpc%02d", i))
		if _, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, sent{rid, "USER_RETRIEVE", "SUCCESS"})
		if i%4 == 0 {
			rid = evRID(fmt.Sprintf("flush-list%02d", i))
			if _, err := c.ListUsers(evCtx(t, rid), &usersv1.ListUsersRequest{}); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, sent{rid, "USER_RETRIEVE_LIST", "SUCCESS"})
			rid = evRID(fmt.Sprintf("flush-miss%02d", i))
			_, err := c.GetUser(evCtx(t, rid), &usersv1.GetUserRequest{Id: missingID})
			wantCode(t, err, codes.NotFound)
			calls = append(calls, sent{rid, "USER_RETRIEVE", "FAIL"})
		}
	}
	// SIGTERM right after the last response: the writer's buffer is full
	// of events not yet written.
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s.logs)
	}

	s2 := start(t, dir)
	auditor, _ := evToken(t, "flush-auditor", auth.RoleAuditor)
	var rids []string
	for _, cl := range calls {
		rids = append(rids, cl.rid)
	}
	got := map[string][]evEvent{}
	for _, e := range evAll(t, s2, auditor, "requestIds="+strings.Join(rids, ","), 1000) {
		got[e.RequestID] = append(got[e.RequestID], e)
	}
	for _, cl := range calls {
		evWantPair(t, got[cl.rid], cl.rid, subject, cl.op, cl.outcome)
	}
	if len(calls) != 50 {
		t.Fatalf("%d calls", len(calls))
	}
}

// The mark by which the REST gateway tells the gRPC server that it refused
// a request is for the gateway alone: a native gRPC client sending it must
// not get its valid call refused, nor a FAIL event with a made-up code.
func TestEventsGatewayMarkFromClients(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "mark-auditor", auth.RoleAuditor)
	token, subject := evToken(t, "mark-admin", auth.RoleAdmin)

	// Over REST the mark cannot be smuggled in as a header.
	rid := evRID("mark-rest")
	for _, h := range []string{"Usersd-Rejected", "Grpc-Metadata-Usersd-Rejected"} {
		r := evDo(t, s, token, rid, "POST", "/v1/users", `{}`, h, rpcerr.ReasonPayloadTooLarge)
		if r.Status != http.StatusCreated {
			t.Fatalf("POST with %s: %d %s", h, r.Status, r.Body)
		}
		evWantMutationListed(t, s, auditor, rid, "USER_CREATE", r.JSON(t)["id"].(string))
		rid = evRID("mark-rest")
	}

	rid = evRID("mark-grpc")
	ctx := metadata.AppendToOutgoingContext(evCtx(t, rid), rpcerr.RejectedMetadata, rpcerr.ReasonPayloadTooLarge)
	_, err := evGRPC(t, s, token).CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}})
	if err == nil {
		evFence(t, s, auditor)
		evWantPair(t, evByRequest(t, s, auditor, rid), rid, subject, "USER_CREATE", "SUCCESS")
		return
	}
	evFence(t, s, auditor)
	evs := evByRequest(t, s, auditor, rid)
	t.Fatalf("a native gRPC CreateUser with a forged usersd-rejected mark is refused (%v) and recorded as %v",
		err, evTypes(evs))
}
