package app

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
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

Admin token, valid for 24h (more: {{.TokenCmd}}):

  {{.Token}}

Try:
{{if .TLS}}
  curl -H "Authorization: Bearer {{.Token}}" https://{{.HTTP}}/v1/users

  grpcurl -H "authorization: Bearer {{.Token}}" -d '{}' {{.GRPC}} users.v1.UserService/ListUsers

(add --cacert CA.pem to curl and -cacert CA.pem to grpcurl when the certificate's
issuer is not in the system's trust store)
{{- else}}
  curl -H "Authorization: Bearer {{.Token}}" http://{{.HTTP}}/v1/users

  grpcurl -plaintext -H "authorization: Bearer {{.Token}}" -d '{}' {{.GRPC}} users.v1.UserService/ListUsers
{{- end}}

`))

// announceKey tells the operator about the key in use: a warning when the
// secret file is readable by others; with the generated development secret,
// a ready admin token when the secret was just created (printing one on
// every start would spread long-lived admin tokens through terminal
// scrollback and captured logs), else how to get one.
func announceKey(log *slog.Logger, stdout io.Writer, cfg Config, key secret, addrs Addrs) {
	if mode, exposed := key.exposed(); exposed {
		log.Warn("the JWT secret file is readable by group or others; restrict it (chmod 600)", "path", key.path, "mode", mode.String())
	}
	if !key.generated {
		return
	}
	if !key.created {
		log.Warn("no JWT key configured: using the generated development secret; for a token run: "+tokenCommand(cfg), "path", key.path)
		return
	}
	log.Warn("no JWT key configured: created a development secret", "path", key.path)
	if err := printBanner(stdout, cfg, key, addrs); err != nil {
		log.Error("printing the development token", "error", err)
	}
}

// tokenCommand is the `usersd token` command line that signs with the
// secret this server uses.
func tokenCommand(cfg Config) string {
	cmd := "usersd token --role admin --db " + cfg.DB
	if cfg.Auth.DataDir != "" {
		cmd += " --data-dir " + cfg.Auth.DataDir
	}
	return cmd
}

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
	// One write: a template writes piece by piece, and a reader of the
	// output (a test, a wrapper script) could see half a command.
	var b bytes.Buffer
	if err := banner.Execute(&b, map[string]any{
		"Path": key.path, "TokenCmd": tokenCommand(cfg), "Token": token, "HTTP": addrs.HTTP, "GRPC": addrs.GRPC,
		"TLS": cfg.TLS.enabled(),
	}); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}
