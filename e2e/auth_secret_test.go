package e2e

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// Keys and secrets: no open mode (the generated secret and its banner),
// the token command, and short secrets refused at startup.

// ---------------------------------------------------------------------
// No open mode: the generated secret and the banner

func TestAuthOpenModeRefused(t *testing.T) {
	sqliteOnly(t, "the generated secret in the data directory exists only for SQLite (PostgreSQL needs a configured key)")
	t.Parallel()
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "jwt-secret")
	s := startEnv(t, dir, nil)
	out := waitForOutput(t, s, "UserService/ListUsers") // the end of the grpcurl line
	tok := bannerToken(t, s, out)

	fi, err := os.Stat(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("jwt-secret mode %v, want 0600", fi.Mode().Perm())
	}
	secret, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSuffix(string(secret), "\n")
	if len(key) < 32 {
		t.Fatalf("generated secret has %d bytes", len(key))
	}
	if strings.Contains(s.logs.String(), key) || strings.Contains(out, key) {
		t.Error("the generated secret appears in the logs or on stdout")
	}
	if strings.Contains(s.logs.String(), tok) {
		t.Error("the admin token appears in the logs")
	}
	// The banner's token: admin, verified with the generated secret, and
	// usable on both transports.
	v, err := auth.NewHMAC([]byte(key), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || !slices.Equal(p.Roles, []string{auth.RoleAdmin}) {
		t.Fatalf("banner token: %+v %v", p, err)
	}
	useToken := func(t *testing.T, s *server, tok string) {
		t.Helper()
		if r := authREST(t, s, "POST", "/v1/users", `{}`, "Bearer "+tok); r.Status != http.StatusCreated {
			t.Fatalf("REST with the token: %d %s", r.Status, r.Body)
		}
		if _, err := usersv1.NewUserServiceClient(bareConn(t, s)).ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Fatalf("gRPC with the token: %v", err)
		}
	}
	useToken(t, s, tok)
	// Not open: no token, or a token signed with another secret, fails.
	wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", ""), notPresented)
	wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+adminToken), presented)

	// Restart on the same directory: the same secret, the first token
	// still works.
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.logs)
	}
	s2 := startEnv(t, dir, nil)
	again, err := os.ReadFile(secretPath)
	if err != nil || string(again) != string(secret) {
		t.Fatalf("the secret changed across a restart (%v)", err)
	}
	useToken(t, s2, tok)

	// usersd token signs with the same secret.
	cmd := exec.Command(binary, "token", "--role", "admin", "--role", "auditor", "--ttl", "1h", "--db", filepath.Join(dir, "users.db"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	printed, err := cmd.Output()
	if err != nil {
		t.Fatalf("usersd token: %v\n%s", err, stderr.String())
	}
	cliTok := strings.TrimSpace(string(printed))
	if strings.Count(string(printed), "\n") != 1 || strings.ContainsAny(cliTok, " \t\n") {
		t.Fatalf("usersd token printed %q, want one token line", printed)
	}
	claims := tokenPayload(t, cliTok)
	roles, _ := claims["roles"].([]any)
	if !slices.Equal(roles, []any{"admin", "auditor"}) {
		t.Errorf("roles %v", claims["roles"])
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 3600 {
		t.Errorf("exp-iat = %v, want 3600", exp-iat)
	}
	useToken(t, s2, cliTok)
	if fi, err := os.Stat(secretPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jwt-secret after usersd token: %v %v", fi, err)
	}

	// The banner's token is printed only when the secret is created: a
	// restart prints none (stdout is complete once the process exited).
	if err := s2.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s2.logs)
	}
	if out := s2.stdout.String(); strings.Contains(out, "Admin token") || bannerCurl.MatchString(out) {
		t.Errorf("a restart on an existing secret printed a token:\n%s", out)
	}
	if !strings.Contains(s2.logs.String(), "usersd token --role admin") {
		t.Errorf("a restart on the generated secret does not say how to get a token:\n%s", s2.logs)
	}
}

func TestAuthTokenCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(env []string, args ...string) (string, string, error) {
		cmd := exec.Command(binary, append([]string{"token"}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	// Without --role: refused, non-zero, saying why, printing no token.
	out, errOut, err := run(nil, "--db", filepath.Join(dir, "users.db"))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("usersd token without --role: %v, want a non-zero exit", err)
	}
	if strings.TrimSpace(out) != "" || !strings.Contains(errOut, "role") {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}

	// Signed with the configured secret (USERS_JWT_SECRET): a server with
	// that secret accepts it, with the roles given.
	out, errOut, err = run([]string{"USERS_JWT_SECRET=" + string(testSecret)}, "--role", "issuer", "--ttl", "10m", "--db", filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatalf("usersd token: %v %s", err, errOut)
	}
	tok := strings.TrimSpace(out)
	v, err := auth.NewHMAC(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || !slices.Equal(p.Roles, []string{auth.RoleIssuer}) {
		t.Fatalf("token from USERS_JWT_SECRET: %+v %v", p, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("usersd token with a configured secret created jwt-secret: %v", err)
	}
	s := start(t, "")
	if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok); r.Status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.Status, r.Body)
	}

	// A secret file works the same way, and a short one is refused.
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, append(append([]byte(nil), testSecret...), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(nil, "--role", "admin", "--jwt-secret-file", file)
	if err != nil {
		t.Fatalf("usersd token --jwt-secret-file: %v %s", err, errOut)
	}
	if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+strings.TrimSpace(out)); r.Status != http.StatusOK {
		t.Fatalf("REST with the file's token: %d %s", r.Status, r.Body)
	}
	if _, _, err := run([]string{"USERS_JWT_SECRET=short"}, "--role", "admin"); err == nil {
		t.Fatal("usersd token signed with a 5-byte secret")
	}
	if _, _, err := run(nil, "--role", "admin", "--ttl", "-1h", "--db", filepath.Join(dir, "users.db")); err == nil {
		t.Fatal("usersd token accepted a negative ttl")
	}
	if _, errOut, err := run([]string{"USERS_JWT_SECRET=" + string(testSecret)}, "--role", "root"); err == nil || !strings.Contains(errOut, "admin, issuer, auditor") {
		t.Fatalf("an unknown role: %v %q, want a refusal naming the known roles", err, errOut)
	}

	// Run where no server ever ran, with no key configured: refused, naming
	// where it looked and how to fix it; nothing is created.
	elsewhere := t.TempDir()
	cmd := exec.Command(binary, "token", "--role", "admin")
	cmd.Dir = elsewhere
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || stdout.Len() != 0 {
		t.Fatalf("usersd token without a secret: %v, stdout %q", err, stdout.String())
	}
	looked := filepath.Join(elsewhere, "data", "jwt-secret")
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, looked) ||
		!strings.Contains(msg, "usersd serve") || !strings.Contains(msg, "--db") {
		t.Fatalf("usersd token without a secret said %q, want one line naming %s and the fix", msg, looked)
	}
	if entries, err := os.ReadDir(elsewhere); err != nil || len(entries) != 0 {
		t.Fatalf("usersd token without a secret created %v (%v)", entries, err)
	}
}

// ---------------------------------------------------------------------
// Short secrets are refused at startup

func TestAuthShortSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short10 := write("short10", []byte("0123456789"))
	short31nl := write("short31nl", []byte(strings.Repeat("x", 31)+"\n")) // 32 bytes, 31 after the newline
	exact32 := []byte("abcdefghijklmnopqrstuvwxyz012345")
	exact32nl := write("exact32nl", append(append([]byte(nil), exact32...), '\n'))

	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"USERS_JWT_SECRET", []string{"USERS_JWT_SECRET=short"}, nil},
		{"USERS_JWT_SECRET of 31 bytes", []string{"USERS_JWT_SECRET=" + strings.Repeat("y", 31)}, nil},
		{"--jwt-secret-file of 10 bytes", nil, []string{"--jwt-secret-file", short10}},
		{"USERS_JWT_SECRET_FILE of 10 bytes", []string{"USERS_JWT_SECRET_FILE=" + short10}, nil},
		{"31 bytes and a newline", nil, []string{"--jwt-secret-file", short31nl}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := serveMustFail(t, tc.env, tc.args...)
			if !strings.Contains(out, "32") || !strings.Contains(strings.ToLower(out), "secret") {
				t.Fatalf("the refusal does not mention the 32-byte minimum:\n%s", out)
			}
		})
	}

	t.Run("missing secret file", func(t *testing.T) {
		serveMustFail(t, nil, "--jwt-secret-file", filepath.Join(dir, "no-such-file"))
	})

	// Exactly 32 bytes plus a trailing newline: accepted, the newline is
	// not part of the key.
	for _, how := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--jwt-secret-file", exact32nl}},
		{"env", []string{"USERS_JWT_SECRET_FILE=" + exact32nl}, nil},
	} {
		t.Run("32 bytes and a newline/"+how.name, func(t *testing.T) {
			s := startEnv(t, "", how.env, how.args...)
			good, err := auth.IssueHS256(exact32, auth.TokenSpec{Subject: "e2e-admin", Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			withNewline, err := auth.IssueHS256(append(append([]byte(nil), exact32...), '\n'), auth.TokenSpec{Subject: "e2e-admin", Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+good); r.Status != http.StatusOK {
				t.Fatalf("token signed with the 32 bytes: %d %s", r.Status, r.Body)
			}
			wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+withNewline), presented)
			if strings.Contains(s.stdout.String(), "Admin token") {
				t.Errorf("banner printed with a configured secret")
			}
		})
	}
}

// --data-dir holds the generated secret instead of the database's
// directory; usersd token given the same --data-dir signs with it.
func TestAuthDataDir(t *testing.T) {
	sqliteOnly(t, "the generated secret in the data directory exists only for SQLite (PostgreSQL needs a configured key)")
	t.Parallel()
	dbDir, dataDir := t.TempDir(), filepath.Join(t.TempDir(), "state")
	s := startEnv(t, dbDir, nil, "--data-dir", dataDir)
	out := waitForOutput(t, s, "UserService/ListUsers") // the end of the grpcurl line
	if !strings.Contains(out, "--data-dir "+dataDir) {
		t.Errorf("the banner's token command lacks --data-dir:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "jwt-secret")); err != nil {
		t.Fatalf("no secret in --data-dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dbDir, "jwt-secret")); !os.IsNotExist(err) {
		t.Fatalf("a secret beside the database too: %v", err)
	}
	cmd := exec.Command(binary, "token", "--role", "admin", "--db", s.DB, "--data-dir", dataDir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	printed, err := cmd.Output()
	if err != nil {
		t.Fatalf("usersd token --data-dir: %v", err)
	}
	if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+strings.TrimSpace(string(printed))); r.Status != http.StatusOK {
		t.Fatalf("its token: %d %s", r.Status, r.Body)
	}
}
