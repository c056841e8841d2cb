package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/usersd/usersd/internal/auth/authtest"
)

// A JWKS that cannot be fetched at startup keeps /readyz at 503 (the
// server cannot accept any token); once the endpoint is back the server
// fetches the keys by itself, without any API traffic, and becomes ready.
func TestReadinessWaitsForJWKS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	js := authtest.NewJWKSServer(t, authtest.ECJWK(t, "ec-1", "ES256", &key.PublicKey))
	js.Fail()
	s := startEnv(t, "", nil, "--jwks-url", js.URL)

	r := s.do(t, "GET", "/readyz", "", "Authorization", "")
	wantError(t, r, http.StatusServiceUnavailable, "ServiceUnavailable")
	wantRetryAfter(t, r)
	if r := s.do(t, "GET", "/healthz", "", "Authorization", ""); r.Status != http.StatusOK {
		t.Fatalf("/healthz while keys are missing: %d (the process is alive)", r.Status)
	}

	js.Recover()
	// Readiness fetches at most every 5 s while it has no keys.
	wantReadyWithin(t, s, http.StatusOK, wait(15*time.Second))
	tok := authtest.Sign(t, jwt.SigningMethodES256, key, "ec-1", jwtClaims(nil))
	if r := s.do(t, "GET", "/v1/users", "", "Authorization", "Bearer "+tok); r.Status != http.StatusOK {
		t.Fatalf("a token of the fetched key: %d %s", r.Status, r.Body)
	}
}
