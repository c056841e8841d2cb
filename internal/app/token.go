package app

import (
	"errors"
	"flag"
	"io"
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

// rolesFlag collects a repeatable --role.
type rolesFlag []string

func (r *rolesFlag) String() string { return strings.Join(*r, ",") }

func (r *rolesFlag) Set(v string) error {
	if v == "" {
		return errors.New("a role must not be empty")
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
	fs.Var((*rolesFlag)(&c.Roles), "role", "role to grant: admin, issuer or auditor (repeatable)")
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
	case getenv(EnvName("jwks-url")) != "":
		return c, errors.New("the server verifies tokens from a JWKS: get tokens from the identity provider")
	}
	return c, nil
}

// IssueToken signs a token with the secret the server would use.
func IssueToken(c TokenConfig, now time.Time) (string, error) {
	key, err := loadSecret(c.Auth, c.DB)
	if err != nil {
		return "", err
	}
	return auth.IssueHS256(key.key, auth.TokenSpec{
		Subject: c.Subject, Roles: c.Roles, TTL: c.TTL,
		Issuer: c.Auth.Issuer, Audience: c.Auth.Audience, RolesClaim: c.Auth.RolesClaim,
	}, now)
}
