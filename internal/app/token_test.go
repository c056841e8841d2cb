package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/auth"
)

func TestTokenUsesTheServersSecretAndNeverCreatesOne(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "users.db")
	secretPath := filepath.Join(dir, generatedSecretName)
	c, err := ParseTokenConfig([]string{"--role", "admin", "--db", db}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}

	_, err = IssueToken(c, time.Now())
	if err == nil || !strings.Contains(err.Error(), secretPath) || !strings.Contains(err.Error(), "usersd serve") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %v, want one line naming %s and how to create it", err, secretPath)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("usersd token without a secret created %v", entries)
	}

	// The secret serve generates there is the one used.
	serveSide, err := findSecret(AuthConfig{}, db)
	if err != nil {
		t.Fatal(err)
	}
	serveSide, err = serveSide.ensure()
	if err != nil || !serveSide.created {
		t.Fatalf("ensure: %+v %v", serveSide, err)
	}
	tok, err := IssueToken(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewHMAC(serveSide.key, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("a token from the generated secret: %v", err)
	}
}

func TestTokenRelativeDBIsNamedAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := ParseTokenConfig([]string{"--role", "admin"}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(wd, "data", generatedSecretName)
	if _, err := IssueToken(c, time.Now()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want one naming %s", err, want)
	}
	if _, err := os.Stat("data"); !os.IsNotExist(err) {
		t.Fatalf("usersd token created ./data: %v", err)
	}
}

func TestTokenConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want []string
	}{
		"case=unknown role":    {[]string{"--role", "root"}, nil, []string{`"root"`, "admin, issuer, auditor"}},
		"case=empty role":      {[]string{"--role", ""}, nil, []string{"admin, issuer, auditor"}},
		"case=no role":         {nil, nil, []string{"--role"}},
		"case=jwks flag":       {[]string{"--role", "admin", "--jwks-url", "https://idp.example/jwks"}, nil, []string{"identity provider"}},
		"case=jwks env":        {[]string{"--role", "admin"}, map[string]string{"USERS_JWKS_URL": "https://idp.example/jwks"}, []string{"identity provider"}},
		"case=file and secret": {[]string{"--role", "admin", "--jwt-secret-file", "x"}, map[string]string{SecretEnv: strings.Repeat("k", 32)}, []string{"not both"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTokenConfig(tc.args, env(tc.env), nil)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("err %v, want one containing %q", err, w)
				}
			}
		})
	}
}

// Only the settings token shares with serve come from the environment:
// USERS_TTL or USERS_ROLE meant for something else change no token.
func TestTokenOnlyFlagsHaveNoEnv(t *testing.T) {
	c, err := ParseTokenConfig([]string{"--role", "auditor"},
		env(map[string]string{"USERS_TTL": "-1h", "USERS_ROLE": "root", "USERS_SUB": "x", "USERS_DB": "/srv/usersd/users.db"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != time.Hour || len(c.Roles) != 1 || c.Subject != "usersd-cli" || c.DB != "/srv/usersd/users.db" {
		t.Fatalf("%+v", c)
	}
}

func TestTokenOnPostgresNeedsAConfiguredKey(t *testing.T) {
	c, err := ParseTokenConfig([]string{"--role", "admin", "--db", "postgres://db.example/users"}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := IssueToken(c, time.Now()); err == nil || !strings.Contains(err.Error(), "--jwt-secret-file") {
		t.Fatalf("err %v", err)
	}
}

// --data-dir (USERS_DATA_DIR) moves the generated secret away from the
// database, for serve and token alike.
func TestDataDirHoldsTheGeneratedSecret(t *testing.T) {
	dbDir, dataDir := t.TempDir(), filepath.Join(t.TempDir(), "state")
	db := filepath.Join(dbDir, "users.db")
	cfg, err := ParseConfig([]string{"--db", db}, env(map[string]string{"USERS_DATA_DIR": dataDir}), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := serveKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dataDir, generatedSecretName); key.path != want || !key.generated {
		t.Fatalf("generated secret at %q, want %q", key.path, want)
	}
	if key, err = key.ensure(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dbDir); len(entries) != 0 {
		t.Fatalf("the secret went beside the database: %v", entries)
	}
	// token finds it with the same --data-dir, and not without it.
	c, err := ParseTokenConfig([]string{"--role", "admin", "--db", db, "--data-dir", dataDir}, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := IssueToken(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewHMAC(key.key, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("token signed with another secret: %v", err)
	}
	c.Auth.DataDir = ""
	if _, err := IssueToken(c, time.Now()); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("without --data-dir: err %v, want one naming --data-dir", err)
	}
	// The hints name the same flags.
	if cmd := tokenCommand(cfg); cmd != "usersd token --role admin --db "+db+" --data-dir "+dataDir {
		t.Fatalf("token command %q", cmd)
	}
	// Without --data-dir: the directory of a SQLite --db, else ./data.
	if d := (AuthConfig{}).dataDir(db); d != dbDir {
		t.Fatalf("default data dir %q, want %q", d, dbDir)
	}
	if d := (AuthConfig{}).dataDir("postgres://db/users"); d != "data" {
		t.Fatalf("data dir with PostgreSQL %q, want data", d)
	}
}
