package app

import (
	"errors"
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

const tokenUsage = `usage: usersd token --role admin [flags]

Prints a bearer token signed with exactly the secret usersd serve uses: give it
the same --db (or key flags) and the same environment. It never creates a
secret: the first start of usersd serve does.

flags:`

// tokenOnlyFlags are the flags of `usersd token` that `serve` has not:
// they have no environment variable.
var tokenOnlyFlags = []string{"role", "ttl", "sub"}

// ParseTokenConfig reads the flags of `usersd token` and the USERS_*
// environment (the same key settings as `usersd serve`). On -h or --help
// it writes the help to help and returns flag.ErrHelp.
func ParseTokenConfig(args []string, getenv func(string) string, help io.Writer) (TokenConfig, error) {
	var c TokenConfig
	cmd := newCLI("usersd token", tokenUsage, func(name string) string {
		if slices.Contains(tokenOnlyFlags, name) {
			return ""
		}
		return EnvName(name)
	})
	cmd.envOnly = secretEnvHelp
	fs := cmd.fs
	fs.Var((*rolesFlag)(&c.Roles), "role", "`role` to grant: "+strings.Join(knownRoles, ", ")+" (repeatable)")
	fs.DurationVar(&c.TTL, "ttl", time.Hour, "lifetime of the token")
	fs.StringVar(&c.Subject, "sub", "usersd-cli", "subject (sub claim) of the token")
	dbFlag(fs, &c.DB)
	authFlags(fs, &c.Auth)
	setting, err := cmd.parse(args, getenv, help)
	if err != nil {
		return c, err
	}
	c.Auth.Secret = getenv(SecretEnv)
	switch {
	case len(c.Roles) == 0:
		return c, errors.New("give at least one --role (" + strings.Join(knownRoles, ", ") + ")")
	case c.TTL <= 0:
		return c, errors.New(setting("ttl") + ": must be positive")
	case c.Auth.SecretFile != "" && c.Auth.Secret != "":
		return c, errors.New("give --jwt-secret-file or " + SecretEnv + ", not both")
	case c.Auth.JWKSURL != "":
		return c, errors.New(setting("jwks-url") + ": the server verifies tokens from the identity provider's JWKS; get tokens from the identity provider")
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
		return "", fmt.Errorf("no JWT secret at %s (the data directory: --data-dir, default the directory of --db %s): start `usersd serve` once to create it, or pass the --db or --data-dir the server uses, or --jwt-secret-file", path, c.DB)
	}
	return auth.IssueHS256(key.key, auth.TokenSpec{
		Subject: c.Subject, Roles: c.Roles, TTL: c.TTL,
		Issuer: c.Auth.Issuer, Audience: c.Auth.Audience, RolesClaim: c.Auth.RolesClaim,
	}, now)
}
