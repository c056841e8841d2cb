package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSpec describes a token to issue with the shared secret (for
// development, tests and operators; production tokens come from the
// identity provider).
type TokenSpec struct {
	Subject    string
	Roles      []string
	TTL        time.Duration
	Issuer     string // set iss when the server requires one
	Audience   string // set aud when the server requires one
	RolesClaim string // "roles" when empty
}

// IssueHS256 signs a token the HMAC verifier with the same secret accepts.
func IssueHS256(secret []byte, spec TokenSpec, now time.Time) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", errors.New("the JWT secret is too short to sign with")
	}
	if spec.Subject == "" {
		return "", errors.New("the token must name its caller (subject)")
	}
	if spec.TTL <= 0 {
		return "", errors.New("the token lifetime must be positive")
	}
	rolesClaim := spec.RolesClaim
	if rolesClaim == "" {
		rolesClaim = "roles"
	}
	roles := spec.Roles
	if roles == nil {
		roles = []string{}
	}
	claims := jwt.MapClaims{
		"sub":      spec.Subject,
		"iat":      now.Unix(),
		"exp":      now.Add(spec.TTL).Unix(),
		rolesClaim: roles,
	}
	if spec.Issuer != "" {
		claims["iss"] = spec.Issuer
	}
	if spec.Audience != "" {
		claims["aud"] = spec.Audience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
