package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

const (
	providerA = "41458e5a-9092-40b7-9a26-d4eb43c5792f"
	missingID = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"
)

func provider(subject string) string {
	return fmt.Sprintf(`{"providerId":%q,"url":"https://example-university.au.auth0.com","subjectId":%q}`, providerA, subject)
}

// createUser creates a user over REST and returns its JSON.
func createUser(t *testing.T, s *server, body string) map[string]any {
	t.Helper()
	r := s.do(t, "POST", "/v1/users", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)
}

func TestRESTUserLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t, "")

	r := s.do(t, "POST", "/v1/users", `{"claims":{"externalUserId":"e-1","n":1},"authenticationProvider":`+provider("sub-1")+`}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	u := r.JSON(t)
	id, _ := u["id"].(string)
	if len(id) != 36 || r.Header.Get("Location") != "/v1/users/"+id {
		t.Fatalf("id %q, Location %q", id, r.Header.Get("Location"))
	}
	if id[14] != '7' {
		t.Errorf("id %s is not a UUIDv7", id)
	}
	if fmt.Sprint(u["claims"]) != "map[externalUserId:e-1 n:1]" {
		t.Errorf("create body %s", r.Body)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the response")
	}

	t.Run("case=get, upper-case id names the same user", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/users/"+strings.ToUpper(id), "")
		if r.Status != 200 || r.JSON(t)["id"] != id {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		ap, _ := r.JSON(t)["authenticationProvider"].(map[string]any)
		if ap["subjectId"] != "sub-1" || ap["providerId"] != providerA {
			t.Fatalf("provider %v", ap)
		}
	})
	t.Run("case=put {} changes nothing", func(t *testing.T) {
		r := s.do(t, "PUT", "/v1/users/"+id, `{}`)
		if r.Status != 200 || string(r.Body) != string(s.do(t, "GET", "/v1/users/"+id, "").Body) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("case=put claims replaces claims, keeps provider", func(t *testing.T) {
		r := s.do(t, "PUT", "/v1/users/"+id, `{"claims":{"b":true}}`)
		m := r.JSON(t)
		if r.Status != 200 || fmt.Sprint(m["claims"]) != "map[b:true]" || m["authenticationProvider"] == nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("case=put with the same id in the body is tolerated", func(t *testing.T) {
		r := s.do(t, "PUT", "/v1/users/"+id, `{"id":"`+strings.ToUpper(id)+`","claims":{"c":1}}`)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("case=put with another id in the body is 400", func(t *testing.T) {
		r := s.do(t, "PUT", "/v1/users/"+id, `{"id":"`+missingID+`"}`)
		e := wantError(t, r, 400, "BadRequest", "id@body")
		if e.Details[0].Value != missingID {
			t.Fatalf("value %q", e.Details[0].Value)
		}
	})
	t.Run("case=put null provider unlinks, null claims clears", func(t *testing.T) {
		r := s.do(t, "PUT", "/v1/users/"+id, `{"authenticationProvider":null,"claims":null}`)
		if m := r.JSON(t); r.Status != 200 || len(m) != 2 || fmt.Sprint(m["claims"]) != "map[]" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("case=update mask in the query cannot override the body", func(t *testing.T) {
		s.do(t, "PUT", "/v1/users/"+id, `{"claims":{"keep":1}}`)
		r := s.do(t, "PUT", "/v1/users/"+id+"?updateMask=claims", `{"authenticationProvider":`+provider("sub-2")+`}`)
		if r.Status != 200 || fmt.Sprint(r.JSON(t)["claims"]) != "map[keep:1]" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("case=delete is 204 with no body, then 404", func(t *testing.T) {
		r := s.do(t, "DELETE", "/v1/users/"+id, "")
		if r.Status != http.StatusNoContent || len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
			t.Fatalf("%d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		wantError(t, s.do(t, "GET", "/v1/users/"+id, ""), 404, "NotFound")
		wantError(t, s.do(t, "DELETE", "/v1/users/"+id, ""), 404, "NotFound")
		wantError(t, s.do(t, "PUT", "/v1/users/"+id, `{}`), 404, "NotFound")
	})
}

func TestRESTCreateVariants(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	for name, body := range map[string]string{
		"case=empty object": `{}`,
		"case=empty body":   "",
		"case=charset":      `{"claims":{"a":"ü"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/users", body, "Content-Type", "application/json; charset=utf-8")
			if r.Status != 201 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			m := r.JSON(t)
			if _, ok := m["claims"].(map[string]any); !ok {
				t.Fatalf("claims missing: %s", r.Body)
			}
			if _, ok := m["authenticationProvider"]; ok && body == "" {
				t.Fatalf("unlinked user shows a provider: %s", r.Body)
			}
		})
	}
	t.Run("case=values are data: metacharacters stored literally", func(t *testing.T) {
		claims := `{"$where":"1=1","a.b[0]":"'; DROP TABLE users; --","\u0001k":"\u001f"}`
		u := createUser(t, s, `{"claims":`+claims+`}`)
		r := s.do(t, "GET", "/v1/users/"+u["id"].(string), "")
		got := r.JSON(t)["claims"].(map[string]any)
		if got["$where"] != "1=1" || got["a.b[0]"] != "'; DROP TABLE users; --" || got["\x01k"] != "\x1f" {
			t.Fatalf("claims %v", got)
		}
	})
}

// U+0000 in a claim key or string is refused on both transports (every
// backend must store the same claims, and PostgreSQL's jsonb cannot hold
// it), naming where it is: a string by its path, a key by the object that
// holds it.
func TestClaimsRefuseNUL(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{"claims":{"v":1}}`)["id"].(string)
	body := `{"claims":{"a":{"k\u0000":1},"s":"x\u0000y"}}`
	wantError(t, s.do(t, "POST", "/v1/users", body), 400, "BadRequest", "claims.a@body", "claims.s@body")
	e := wantError(t, s.do(t, "PUT", "/v1/users/"+id, body), 400, "BadRequest", "claims.a@body", "claims.s@body")
	for _, d := range e.Details {
		if d.Param == "claims.s" && d.Value != "x\x00y" {
			t.Errorf("detail value %q, want the string sent", d.Value)
		}
	}
	_, err := s.grpc().CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{
		Claims: mustStruct(t, map[string]any{"s": "\x00"})}})
	wantViolations(t, err, "user.claims.s")
	if got := s.do(t, "GET", "/v1/users/"+id, ""); got.Status != 200 || got.JSON(t)["claims"].(map[string]any)["v"] != 1.0 {
		t.Fatalf("the refused update changed the user: %d %s", got.Status, got.Body)
	}
}

func TestRESTProviderLinkConflict(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	first := createUser(t, s, `{"authenticationProvider":`+provider("taken")+`}`)
	wantError(t, s.do(t, "POST", "/v1/users", `{"authenticationProvider":`+provider("taken")+`}`), 409, "Conflict")
	other := createUser(t, s, `{}`)
	wantError(t, s.do(t, "PUT", "/v1/users/"+other["id"].(string), `{"authenticationProvider":`+provider("taken")+`}`), 409, "Conflict")
	// The same subject at another provider is another account.
	createUser(t, s, `{"authenticationProvider":{"providerId":"`+missingID+`","url":"http://idp.example","subjectId":"taken"}}`)
	// Unlinking frees the pair.
	s.do(t, "PUT", "/v1/users/"+first["id"].(string), `{"authenticationProvider":null}`)
	if r := s.do(t, "PUT", "/v1/users/"+other["id"].(string), `{"authenticationProvider":`+provider("taken")+`}`); r.Status != 200 {
		t.Fatalf("relink after unlink: %d %s", r.Status, r.Body)
	}
}
