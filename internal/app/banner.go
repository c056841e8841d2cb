package app

import (
	"fmt"
	"io"
	"text/template"
	"time"

	"github.com/usersd/usersd/internal/auth"
)

// bannerTTL is the lifetime of the admin token printed at startup.
const bannerTTL = 24 * time.Hour

var banner = template.Must(template.New("banner").Parse(`
usersd: no JWT key is configured, so tokens are HS256-signed with the generated
secret in {{.Path}} (kept across restarts; configure --jwt-secret-file,
USERS_JWT_SECRET or --jwks-url for anything but development).

Admin token, valid for 24h (more: usersd token --role admin --db {{.DB}}):

  {{.Token}}

Try:

  curl -H "Authorization: Bearer {{.Token}}" http://{{.HTTP}}/v1/users

  grpcurl -plaintext -H "authorization: Bearer {{.Token}}" -d '{}' {{.GRPC}} users.v1.UserService/ListUsers

`))

// printBanner prints a ready admin token and two commands that work as
// they are, for the developer who just ran `usersd serve`.
func printBanner(w io.Writer, cfg Config, key secret, addrs Addrs) error {
	if w == nil {
		return nil
	}
	token, err := auth.IssueHS256(key.key, auth.TokenSpec{
		Subject: "usersd-dev-admin", Roles: []string{auth.RoleAdmin}, TTL: bannerTTL,
		Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, RolesClaim: cfg.Auth.RolesClaim,
	}, time.Now())
	if err != nil {
		return fmt.Errorf("issue admin token: %w", err)
	}
	return banner.Execute(w, map[string]string{
		"Path": key.path, "DB": cfg.DB, "Token": token, "HTTP": addrs.HTTP, "GRPC": addrs.GRPC,
	})
}
