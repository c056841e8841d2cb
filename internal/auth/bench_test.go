package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures one token verification per algorithm, to decide
// whether caching verified tokens pays. Run:
//
//	go test ./internal/auth -run '^$' -bench Verify
func BenchmarkVerify(b *testing.B) {
	claims := jwt.MapClaims{"sub": "bench", "roles": []string{RoleAdmin}, "exp": time.Now().Add(time.Hour).Unix()}
	secret := []byte("0123456789abcdef0123456789abcdef")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		sign   any
		verify any
	}{
		{"HS256", jwt.SigningMethodHS256, secret, secret},
		{"RS256", jwt.SigningMethodRS256, rsaKey, &rsaKey.PublicKey},
		{"ES256", jwt.SigningMethodES256, ecKey, &ecKey.PublicKey},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, edKey.Public()},
	} {
		token, err := jwt.NewWithClaims(tc.method, claims).SignedString(tc.sign)
		if err != nil {
			b.Fatal(err)
		}
		for _, cached := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/cached=%v", tc.name, cached), func(b *testing.B) {
				v := newVerifier(Options{}, []string{tc.method.Alg()}, func(*jwt.Token) (any, error) { return tc.verify, nil })
				if !cached {
					v.cache = nil
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(token); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
