package e2e

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/rpcerr"
)

// Verification settings: issuer, audience, the roles claim, and JWKS.

// ---------------------------------------------------------------------
// Issuer, audience and roles claim configuration

func TestAuthIssuerAudience(t *testing.T) {
	t.Parallel()
	const iss, aud = "https://idp.example.test/", "usersd-e2e"
	s := start(t, "", "--jwt-issuer", iss, "--jwt-audience", aud)
	c := usersv1.NewUserServiceClient(bareConn(t, s))

	good := []struct {
		name string
		tok  string
	}{
		{"iss and aud", tokenFor(t, auth.TokenSpec{Subject: "x", Roles: []string{auth.RoleAdmin}, Issuer: iss, Audience: aud})},
		{"aud in a list", hs256(t, map[string]any{"iss": iss, "aud": []string{"other", aud}})},
	}
	for _, tc := range good {
		if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok); r.Status != http.StatusOK {
			t.Errorf("%s: REST %d %s", tc.name, r.Status, r.Body)
		}
		if _, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Errorf("%s: gRPC %v", tc.name, err)
		}
	}

	bad := []struct {
		name string
		tok  string
	}{
		{"wrong issuer", hs256(t, map[string]any{"iss": "https://evil.example.test/", "aud": aud})},
		{"issuer differs by a slash", hs256(t, map[string]any{"iss": strings.TrimSuffix(iss, "/"), "aud": aud})},
		{"wrong audience", hs256(t, map[string]any{"iss": iss, "aud": "someone-else"})},
		{"no issuer", hs256(t, map[string]any{"aud": aud})},
		{"no audience", hs256(t, map[string]any{"iss": iss})},
		{"neither", adminToken},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok), presented)
			_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{})
			wantStatusReason(t, err, codes.Unauthenticated, rpcerr.ReasonInvalidToken)
		})
	}
}

func TestAuthRolesClaim(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--roles-claim", "perms")
	c := usersv1.NewUserServiceClient(bareConn(t, s))
	cases := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"admin in perms", tokenFor(t, auth.TokenSpec{Subject: "perms-client", Roles: []string{auth.RoleAdmin}, RolesClaim: "perms"}), true},
		{"issuer in perms", hs256(t, map[string]any{"roles": nil, "perms": []string{auth.RoleIssuer}}), true},
		{"auditor in perms", hs256(t, map[string]any{"roles": nil, "perms": []string{auth.RoleAuditor}}), false},
		{"admin in roles only", adminToken, false},
		{"perms as a string", hs256(t, map[string]any{"perms": auth.RoleAdmin}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok)
			_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{})
			if tc.ok {
				if r.Status != http.StatusOK || err != nil {
					t.Fatalf("REST %d %s; gRPC %v", r.Status, r.Body, err)
				}
				return
			}
			wantError(t, r, http.StatusForbidden, "Forbidden")
			wantStatusReason(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
		})
	}
}

// ---------------------------------------------------------------------
// JWKS

func TestAuthJWKS(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	js := authtest.NewJWKSServer(t,
		authtest.RSAJWK("rsa-1", "RS256", &rsaKey.PublicKey),
		authtest.ECJWK(t, "ec-1", "", &ecKey.PublicKey),
		authtest.EdJWK("ed-1", "", edPub),
	)

	dir := t.TempDir()
	s := startEnv(t, dir, nil, "--jwks-url", js.URL)
	c := usersv1.NewUserServiceClient(bareConn(t, s))
	fetchesAtStart := js.Hits()
	if fetchesAtStart == 0 {
		t.Fatal("the server did not fetch the JWKS at startup")
	}

	rs := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, kid, jwtClaims(over))
	}
	es := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodES256, ecKey, kid, jwtClaims(over))
	}
	ed := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodEdDSA, edKey, kid, jwtClaims(over))
	}
	wantOK := func(t *testing.T, name, tok string) {
		t.Helper()
		if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok); r.Status != http.StatusOK {
			t.Errorf("%s: REST %d %s", name, r.Status, r.Body)
		}
		if _, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Errorf("%s: gRPC %v", name, err)
		}
	}
	wantRefused := func(t *testing.T, name, tok string) {
		t.Helper()
		r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: REST %d %s, want 401", name, r.Status, r.Body)
		} else {
			wantUnauthorized(t, r, presented)
		}
		_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: gRPC %v, want UNAUTHENTICATED", name, err)
		}
	}
	freshValid := func() map[string]string {
		return map[string]string{"RS256": rs("rsa-1", nil), "ES256": es("ec-1", nil), "EdDSA": ed("ed-1", nil)}
	}

	for name, tok := range freshValid() {
		wantOK(t, name, tok)
	}
	// Roles still apply.
	wantOK(t, "ES256 issuer", es("ec-1", map[string]any{"roles": []string{auth.RoleIssuer}}))
	auditor := ed("ed-1", map[string]any{"roles": []string{auth.RoleAuditor}})
	wantError(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+auditor), http.StatusForbidden, "Forbidden")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	for name, tok := range map[string]string{
		"HS256 with the test secret":     hs256(t, nil),
		"HS256 with the test secret+kid": authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "rsa-1", jwtClaims(nil)),
		"HS256 with the RSA public PEM":  authtest.Sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", jwtClaims(nil)),
		"HS256 with the RSA public DER":  authtest.Sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", jwtClaims(nil)),
		"alg none naming a key":          authtest.Unsigned(t, "none", "rsa-1", jwtClaims(nil)),
		"RS256 naming the EC key":        rs("ec-1", nil),
		"ES256 naming the Ed25519 key":   es("ed-1", nil),
		"RS256 expired":                  rs("rsa-1", map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}),
		"EdDSA signed by another key":    authtest.Sign(t, jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(make([]byte, 32)), "ed-1", jwtClaims(nil)),
	} {
		wantRefused(t, name, tok)
	}
	if n := js.Hits(); n != fetchesAtStart {
		t.Errorf("tokens naming known kids caused %d JWKS fetches", n-fetchesAtStart)
	}

	// Key rotation: a kid added after start is fetched on first use.
	js.Add(authtest.ECJWK(t, "ec-2", "", &ecKey.PublicKey))
	wantOK(t, "ES256 new kid", es("ec-2", nil))
	if n := js.Hits(); n != fetchesAtStart+1 {
		t.Errorf("%d JWKS fetches for the new kid, want 1", n-fetchesAtStart)
	}

	// The endpoint goes down: known kids keep working (fresh tokens, so
	// the keys are what is cached, not the verdicts), unknown ones do not.
	js.Fail()
	for name, tok := range freshValid() {
		wantOK(t, name+" after the JWKS went down", tok)
	}
	wantOK(t, "ES256 rotated kid after the JWKS went down", es("ec-2", nil))
	wantRefused(t, "unknown kid after the JWKS went down", rs("rsa-unknown", nil))

	// A JWKS-configured server has no generated secret and no banner.
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("jwt-secret in the data directory of a JWKS server: %v", err)
	}
	if out := s.stdout.String(); strings.Contains(out, "Admin token") {
		t.Errorf("a JWKS server printed a banner:\n%s", out)
	}
}
