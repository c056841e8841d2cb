package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/auth"
)

// TokenConfig is what `usersd token` can be told.
type TokenConfig struct {
	Roles   []string
	TTL     time.Duration
	Subject string
	DB      string
	Auth    AuthConfig
}

// knownRoles are the roles the server's role table grants anything to: a
// token with any other role would only ever get 403.
var knownRoles = []string{auth.RoleAdmin, auth.RoleIssuer, auth.RoleAuditor}

// rolesFlag collects a repeatable --role.
type rolesFlag []string

func (r *rolesFlag) String() string { return strings.Join(*r, ",") }

func (r *rolesFlag) Set(v string) error {
	if !slices.Contains(knownRoles, v) {
		return fmt.Errorf("not a role: want one of %s", strings.Join(knownRoles, ", "))
	}
	*r = append(*r, v)
	return nil
}

// ParseTokenConfig reads the flags of `usersd token` and the USERS_*
// environment (the same key settings as `usersd serve`).
func ParseTokenConfig(args []string, getenv func(string) string, stderr io.Writer) (TokenConfig, error) {
	var c TokenConfig
	fs := flag.NewFlagSet("usersd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var((*rolesFlag)(&c.Roles), "role", "role to grant: "+strings.Join(knownRoles, ", ")+" (repeatable)")
	fs.DurationVar(&c.TTL, "ttl", time.Hour, "lifetime of the token")
	fs.StringVar(&c.Subject, "sub", "usersd-cli", "subject (sub claim) of the token")
	dbFlag(fs, &c.DB)
	authFlags(fs, &c.Auth)
	if err := parse(fs, args, getenv); err != nil {
		return c, err
	}
	c.Auth.Secret = getenv(SecretEnv)
	switch {
	case len(c.Roles) == 0:
		return c, errors.New("give at least one --role")
	case c.TTL <= 0:
		return c, errors.New("--ttl must be positive")
	case c.Auth.SecretFile != "" && c.Auth.Secret != "":
		return c, errors.New("give --jwt-secret-file or " + SecretEnv + ", not both")
	case c.Auth.JWKSURL != "":
		return c, errors.New("the server verifies tokens from a JWKS (--jwks-url): get tokens from the identity provider")
	}
	return c, nil
}

// IssueToken signs a token with exactly the secret the server would use.
// It never creates one: a token signed with a secret the server does not
// know would only be refused.
func IssueToken(c TokenConfig, now time.Time) (string, error) {
	key, err := findSecret(c.Auth, c.DB)
	if err != nil {
		return "", err
	}
	if key.key == nil {
		path, err := filepath.Abs(key.path)
		if err != nil {
			path = key.path
		}
		return "", fmt.Errorf("no JWT secret at %s (beside --db %s): start `usersd serve` once to create it, or pass the --db the server uses, or --jwt-secret-file", path, c.DB)
	}
	return auth.IssueHS256(key.key, auth.TokenSpec{
		Subject: c.Subject, Roles: c.Roles, TTL: c.TTL,
		Issuer: c.Auth.Issuer, Audience: c.Auth.Audience, RolesClaim: c.Auth.RolesClaim,
	}, now)
}
