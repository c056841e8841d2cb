package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// wantETag asserts a REST response's entity tag, and that the gateway's
// own spelling of gRPC metadata did not come along.
func wantETag(t *testing.T, r response, want string) {
	t.Helper()
	if got := r.Header.Values("ETag"); len(got) != 1 || got[0] != want {
		t.Fatalf("ETag %q, want %q (status %d %s)", got, want, r.Status, r.Body)
	}
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "grpc-metadata-") {
			t.Fatalf("response header %s: %q", k, r.Header[k])
		}
	}
}

// wantClaims asserts the claims of a REST user body.
func wantClaims(t *testing.T, r response, key string, want float64) {
	t.Helper()
	claims, _ := r.JSON(t)["claims"].(map[string]any)
	if claims[key] != want {
		t.Fatalf("claims %v, want %s = %v", claims, key, want)
	}
}

// A user's ETag over REST: "1" on create, one more on every update (an
// empty one too), If-Match honoured by PUT and DELETE, If-None-Match by
// GET; every refusal changes nothing.
func TestRESTVersions(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	created := s.do(t, "POST", "/v1/users", `{"claims":{"v":1}}`)
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	wantETag(t, created, `"1"`)
	path := "/v1/users/" + created.JSON(t)["id"].(string)
	wantETag(t, s.do(t, "GET", path, ""), `"1"`)

	steps := []struct {
		name                  string
		method, body, ifMatch string
		status                int
		etag                  string // after the request, as GET shows it
		code                  string // of an error
	}{
		{"case=If-Match the current tag", "PUT", `{"claims":{"v":2}}`, `"1"`, 200, `"2"`, ""},
		{"case=If-Match a stale tag", "PUT", `{"claims":{"v":9}}`, `"1"`, 412, `"2"`, "PreconditionFailed"},
		{"case=If-Match star", "PUT", `{"claims":{"v":3}}`, "*", 200, `"3"`, ""},
		{"case=no If-Match: unconditional, and {} is an update too", "PUT", `{}`, "", 200, `"4"`, ""},
		{"case=If-Match weak never matches", "PUT", `{"claims":{"v":9}}`, `W/"4"`, 412, `"4"`, "PreconditionFailed"},
		{"case=If-Match a future tag", "PUT", `{"claims":{"v":9}}`, `"5"`, 412, `"4"`, "PreconditionFailed"},
		{"case=DELETE If-Match a stale tag", "DELETE", "", `"3"`, 412, `"4"`, "PreconditionFailed"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := s.do(t, st.method, path, st.body, "If-Match", st.ifMatch)
			if st.code != "" {
				wantError(t, r, st.status, st.code)
			} else {
				if r.Status != st.status {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				wantETag(t, r, st.etag)
			}
			got := s.do(t, "GET", path, "")
			wantETag(t, got, st.etag)
		})
	}
	t.Run("case=refusals changed nothing", func(t *testing.T) {
		wantClaims(t, s.do(t, "GET", path, ""), "v", 3)
	})
	t.Run("case=malformed If-Match is 400 naming the header", func(t *testing.T) {
		for _, method := range []string{"PUT", "DELETE"} {
			body := ""
			if method == "PUT" {
				body = `{"claims":{"v":9}}`
			}
			for _, bad := range []string{"4", `"4", "5"`, `"4`} {
				e := wantError(t, s.do(t, method, path, body, "If-Match", bad), 400, "BadRequest", "If-Match@headers")
				if e.Details[0].Value != bad {
					t.Fatalf("%s If-Match %s: detail value %q", method, bad, e.Details[0].Value)
				}
			}
		}
		wantETag(t, s.do(t, "GET", path, ""), `"4"`)
	})
	t.Run("case=If-None-Match", func(t *testing.T) {
		for _, inm := range []string{`"4"`, `W/"4"`, `"1", "4"`, "*"} {
			r := s.do(t, "GET", path, "", "If-None-Match", inm)
			if r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
				t.Fatalf("If-None-Match %s: %d %q %q", inm, r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			wantETag(t, r, `"4"`)
		}
		for _, inm := range []string{`"3"`, `W/"3", "5"`} {
			r := s.do(t, "GET", path, "", "If-None-Match", inm)
			if r.Status != http.StatusOK {
				t.Fatalf("If-None-Match %s: %d %s", inm, r.Status, r.Body)
			}
			wantClaims(t, r, "v", 3)
		}
	})
	t.Run("case=DELETE If-Match the current tag", func(t *testing.T) {
		if r := s.do(t, "DELETE", path, "", "If-Match", `"4"`); r.Status != http.StatusNoContent {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		wantError(t, s.do(t, "GET", path, ""), 404, "NotFound")
	})
	t.Run("case=a missing user is 404 whatever If-Match says", func(t *testing.T) {
		for _, ifMatch := range []string{`"4"`, "*", `W/"1"`} {
			wantError(t, s.do(t, "PUT", path, `{}`, "If-Match", ifMatch), 404, "NotFound")
			wantError(t, s.do(t, "DELETE", path, "", "If-Match", ifMatch), 404, "NotFound")
		}
	})
}

// A 412 is recorded as a FAIL with code PreconditionFailed; a 304 is a
// read that happened: START and SUCCESS.
func TestVersionsEvents(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	auditor, _ := evToken(t, "versions-auditor", auth.RoleAuditor)
	u := createUser(t, s, `{}`)
	id := u["id"].(string)

	stale := evRID("stale")
	wantError(t, evDo(t, s, adminToken, stale, "PUT", "/v1/users/"+id, `{}`, "If-Match", `"7"`), 412, "PreconditionFailed")
	notModified := evRID("not-modified")
	if r := evDo(t, s, adminToken, notModified, "GET", "/v1/users/"+id, "", "If-None-Match", `"1"`); r.Status != http.StatusNotModified {
		t.Fatalf("GET If-None-Match: %d %s", r.Status, r.Body)
	}
	evFence(t, s, auditor)
	_, fail := evWantPair(t, evByRequest(t, s, auditor, stale), stale, "e2e-admin", "USER_UPDATE", "FAIL")
	evWantMeta(t, fail, map[string]any{"userId": id, "code": "PreconditionFailed"})
	_, success := evWantPair(t, evByRequest(t, s, auditor, notModified), notModified, "e2e-admin", "USER_RETRIEVE", "SUCCESS")
	evWantMeta(t, success, map[string]any{"userId": id})
}

// Two clients that read one version and both update it with If-Match get
// exactly one 200 and one 412, however their requests interleave.
func TestRESTConcurrentIfMatch(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	client := newRESTClient(t)
	path := "/v1/users/" + createUser(t, s, `{}`)["id"].(string)
	for round := 1; round <= 10; round++ {
		tag := `"` + strconv.Itoa(round) + `"`
		results := make([]restResult, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				results[i] = s.call(client, "PUT", path, `{"claims":{"by":`+strconv.Itoa(i)+`}}`, "If-Match", tag)
			})
		}
		close(start)
		wg.Wait()
		statuses := make([]int, 2)
		for i, r := range results {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			statuses[i] = r.Status
		}
		if !(statuses[0] == 200 && statuses[1] == 412 || statuses[0] == 412 && statuses[1] == 200) {
			t.Fatalf("round %d: statuses %v, want one 200 and one 412", round, statuses)
		}
		wantETag(t, s.do(t, "GET", path, ""), `"`+strconv.Itoa(round+1)+`"`)
	}
}

// Over gRPC the tag is etag header metadata and the condition if-match
// request metadata, with the same rules; both transports see one version.
func TestGRPCVersions(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.grpc()
	ctx := t.Context()
	ifMatch := func(tag string) context.Context { return metadata.AppendToOutgoingContext(ctx, "if-match", tag) }
	wantTag := func(t *testing.T, md metadata.MD, want string) {
		t.Helper()
		if got := md.Get("etag"); len(got) != 1 || got[0] != want {
			t.Fatalf("etag header metadata %q, want %q", got, want)
		}
	}

	var hdr metadata.MD
	created, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: mustStruct(t, map[string]any{"v": 1})}}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	wantTag(t, hdr, `"1"`)
	id := created.GetUser().GetId()
	if _, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	wantTag(t, hdr, `"1"`)

	update := func(md context.Context, v float64, opts ...grpc.CallOption) error {
		_, err := c.UpdateUser(md, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: mustStruct(t, map[string]any{"v": v})}}, opts...)
		return err
	}
	if err := update(ifMatch(`"1"`), 2, grpc.Header(&hdr)); err != nil {
		t.Fatalf("update with the current tag: %v", err)
	}
	wantTag(t, hdr, `"2"`)
	wantCode(t, update(ifMatch(`"1"`), 9), codes.FailedPrecondition)
	wantCode(t, update(ifMatch(`W/"2"`), 9), codes.FailedPrecondition)
	wantViolations(t, update(ifMatch("2"), 9), "if-match")
	wantCode(t, update(ifMatch(`"2"`), 9, grpc.Header(&hdr)), codes.OK)
	wantTag(t, hdr, `"3"`)

	// REST sees the version gRPC made.
	r := s.do(t, "GET", "/v1/users/"+id, "")
	wantETag(t, r, `"3"`)
	wantClaims(t, r, "v", 9)

	_, err = c.DeleteUser(ifMatch(`"2"`), &usersv1.DeleteUserRequest{Id: id})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id}); err != nil {
		t.Fatalf("the user is gone after a refused delete: %v", err)
	}
	_, err = c.DeleteUser(ifMatch(`"3"`), &usersv1.DeleteUserRequest{Id: id})
	wantCode(t, err, codes.OK)
	_, err = c.DeleteUser(ifMatch("*"), &usersv1.DeleteUserRequest{Id: id})
	wantCode(t, err, codes.NotFound)
}
