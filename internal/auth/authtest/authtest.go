// Package authtest helps tests make bearer tokens and serve key sets:
// signed and hand-built unsigned JWTs, hand-written public JWKs, and a
// JWKS server that a test changes while it runs. Only tests import it.
package authtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is a valid claim set for subject sub: iat now, exp in an hour,
// roles [admin], and a random jti so that no two tokens are equal (a
// verifier's cache of verified tokens never answers for a new one). Each
// override replaces a claim; a nil value removes it.
func Claims(sub string, over map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "roles": []string{"admin"}, "jti": rand.Text()}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims with key, naming kid in the header when it is set.
func Sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Unsigned builds a token with the given alg and an empty signature by
// hand (no library will sign "none").
func Unsigned(t testing.TB, alg, kid string, c jwt.MapClaims) string {
	t.Helper()
	header := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b64(h) + "." + b64(p) + "."
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// RSAJWK, ECJWK and EdJWK write public JWKs by hand; alg is left out when
// empty (it is optional).
func RSAJWK(kid, alg string, pub *rsa.PublicKey) map[string]any {
	return withAlg(map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}, alg)
}

// ECJWK is the JWK of a P-256 public key.
func ECJWK(t testing.TB, kid, alg string, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	raw, err := pub.Bytes() // 0x04 || X || Y, each 32 bytes for P-256
	if err != nil {
		t.Fatal(err)
	}
	return withAlg(map[string]any{
		"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
		"x": b64(raw[1:33]), "y": b64(raw[33:65]),
	}, alg)
}

// EdJWK is the JWK of an Ed25519 public key.
func EdJWK(kid, alg string, pub ed25519.PublicKey) map[string]any {
	return withAlg(map[string]any{"kty": "OKP", "kid": kid, "use": "sig", "crv": "Ed25519", "x": b64(pub)}, alg)
}

func withAlg(m map[string]any, alg string) map[string]any {
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// JWKSServer serves a key set that the test changes while it runs, and
// counts the fetches.
type JWKSServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []map[string]any
	down bool
	hits atomic.Int64
}

// NewJWKSServer serves keys until the test ends.
func NewJWKSServer(t testing.TB, keys ...map[string]any) *JWKSServer {
	t.Helper()
	js := &JWKSServer{keys: keys}
	js.Server = httptest.NewServer(http.HandlerFunc(js.serve))
	t.Cleanup(js.Close)
	return js
}

func (js *JWKSServer) serve(w http.ResponseWriter, _ *http.Request) {
	js.hits.Add(1)
	js.mu.Lock()
	down := js.down
	body, err := json.Marshal(map[string]any{"keys": js.keys})
	js.mu.Unlock()
	if err != nil || down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Add publishes one more key.
func (js *JWKSServer) Add(k map[string]any) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.keys = append(js.keys, k)
}

// Fail makes every later fetch fail with 503.
func (js *JWKSServer) Fail() {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.down = true
}

// Recover makes later fetches succeed again.
func (js *JWKSServer) Recover() {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.down = false
}

// Hits is the number of fetches so far.
func (js *JWKSServer) Hits() int64 { return js.hits.Load() }
