package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAnnounceKey(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DB: filepath.Join(dir, "users.db")}
	addrs := Addrs{GRPC: "127.0.0.1:9090", HTTP: "127.0.0.1:8080"}
	secretFile := func(t *testing.T, mode os.FileMode) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(path, []byte(strings.Repeat("k", 40)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // not narrowed by the umask
			t.Fatal(err)
		}
		return path
	}
	announce := func(key secret) (logs, stdout string) {
		var l, o bytes.Buffer
		announceKey(slog.New(slog.NewJSONHandler(&l, nil)), &o, cfg, key, addrs)
		return l.String(), o.String()
	}
	const exposedMsg = "readable by group or others"

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o666} {
		logs, out := announce(secret{key: []byte("k"), path: secretFile(t, mode)})
		if !strings.Contains(logs, exposedMsg) || !strings.Contains(logs, mode.String()) {
			t.Errorf("mode %v: no warning naming the mode:\n%s", mode, logs)
		}
		if out != "" {
			t.Errorf("mode %v: a configured secret printed %q", mode, out)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if logs, _ := announce(secret{key: []byte("k"), path: secretFile(t, mode)}); strings.Contains(logs, exposedMsg) {
			t.Errorf("mode %v warned:\n%s", mode, logs)
		}
	}
	if logs, _ := announce(secret{key: []byte(strings.Repeat("k", 40))}); logs != "" {
		t.Errorf("USERS_JWT_SECRET (no file) logged:\n%s", logs)
	}

	generated := secret{key: []byte(strings.Repeat("k", 40)), path: secretFile(t, 0o600), generated: true}
	created := generated
	created.created = true
	if logs, out := announce(created); !strings.Contains(out, "Admin token") || !strings.Contains(out, "curl -H \"Authorization: Bearer ") {
		t.Errorf("a new development secret printed no token:\n%s\nlogs:\n%s", out, logs)
	}
	tlsCfg := cfg
	tlsCfg.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}
	var tlsOut bytes.Buffer
	if err := printBanner(&tlsOut, tlsCfg, created, addrs); err != nil {
		t.Fatal(err)
	}
	if out := tlsOut.String(); !strings.Contains(out, "https://127.0.0.1:8080/v1/users") || strings.Contains(out, "-plaintext") || strings.Contains(out, "http://") {
		t.Errorf("with TLS, the banner's commands are not for TLS:\n%s", out)
	}
	logs, out := announce(generated)
	if out != "" {
		t.Errorf("an existing development secret printed a token:\n%s", out)
	}
	if !strings.Contains(logs, "usersd token --role admin --db "+cfg.DB) {
		t.Errorf("no hint how to get a token:\n%s", logs)
	}
}
