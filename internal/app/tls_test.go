package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/testcert"
)

// certFiles is a certificate and key file pair in a temp directory.
type certFiles struct {
	ca        *testcert.CA
	cert, key string
}

func newCertFiles(t *testing.T) certFiles {
	t.Helper()
	dir := t.TempDir()
	return certFiles{ca: testcert.NewCA(t), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
}

// write writes a server certificate with the given serial and its key.
func (f certFiles) write(t *testing.T, serial int64, mtime time.Time) {
	t.Helper()
	cert, key := f.ca.Server(t, serial)
	testcert.Write(t, f.cert, f.key, cert, key, mtime)
}

// writeMismatched writes a certificate with a key that is not its own.
func (f certFiles) writeMismatched(t *testing.T, serial int64, mtime time.Time) {
	t.Helper()
	cert, _ := f.ca.Server(t, serial)
	_, otherKey := f.ca.Server(t, serial)
	testcert.Write(t, f.cert, f.key, cert, otherKey, mtime)
}

func (f certFiles) config() TLSConfig { return TLSConfig{CertFile: f.cert, KeyFile: f.key} }

// lockedLog is a JSON log safe for concurrent handshakes.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func newReloader(t *testing.T, f certFiles) (*certReloader, *lockedLog) {
	t.Helper()
	var logs lockedLog
	r, err := newCertReloader(f.config(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r, &logs
}

// served is the serial number of the certificate a handshake gets.
func served(t *testing.T, r *certReloader) int64 {
	t.Helper()
	cert, err := r.GetCertificate(nil)
	if err != nil || cert == nil {
		t.Fatalf("GetCertificate: %v, %v", cert, err)
	}
	return cert.Leaf.SerialNumber.Int64()
}

const notReloaded = "TLS certificate not reloaded"

func TestCertReloaderStartErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		prepare func(t *testing.T, f certFiles)
		want    []string
	}{
		"case=no cert file": {func(t *testing.T, f certFiles) { f.write(t, 1, time.Now()); os.Remove(f.cert) }, []string{"--tls-cert-file", "cert.pem: no such file"}},
		"case=no key file":  {func(t *testing.T, f certFiles) { f.write(t, 1, time.Now()); os.Remove(f.key) }, []string{"--tls-key-file", "key.pem: no such file"}},
		"case=mismatched":   {func(t *testing.T, f certFiles) { f.writeMismatched(t, 1, time.Now()) }, []string{"--tls-cert-file", "--tls-key-file", "private key does not match"}},
		"case=not PEM": {func(t *testing.T, f certFiles) {
			f.write(t, 1, time.Now())
			if err := os.WriteFile(f.cert, []byte("not a certificate"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"--tls-cert-file", "--tls-key-file"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newCertFiles(t)
			tc.prepare(t, f)
			_, err := newCertReloader(f.config(), slog.New(slog.DiscardHandler))
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err %v, want one containing %q", err, want)
				}
			}
		})
	}
}

// A change of either file's size or modification time is served from the
// next handshake on; a pair that does not load leaves the certificate in
// service, is logged once, and is tried again at the next change.
func TestCertReloaderWatchesFiles(t *testing.T) {
	f := newCertFiles(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.write(t, 1, t0)
	r, logs := newReloader(t, f)
	if got := served(t, r); got != 1 {
		t.Fatalf("serial %d at start, want 1", got)
	}

	f.write(t, 2, t0.Add(time.Second))
	if got := served(t, r); got != 2 {
		t.Fatalf("serial %d after the files changed, want 2", got)
	}

	f.writeMismatched(t, 3, t0.Add(2*time.Second))
	for range 3 {
		if got := served(t, r); got != 2 {
			t.Fatalf("serial %d after a mismatched pair, want the previous 2", got)
		}
	}
	if n := logs.count(notReloaded); n != 1 {
		t.Fatalf("%d warnings for one bad change, want 1:\n%s", n, logs.buf.String())
	}

	if err := os.Remove(f.key); err != nil { // mid-rotation
		t.Fatal(err)
	}
	if got := served(t, r); got != 2 {
		t.Fatalf("serial %d without a key file, want the previous 2", got)
	}

	f.write(t, 4, t0.Add(3*time.Second))
	if got := served(t, r); got != 4 {
		t.Fatalf("serial %d after a good pair followed bad ones, want 4", got)
	}
	if n := logs.count(notReloaded); n != 2 {
		t.Fatalf("%d warnings, want 2 (mismatched, key missing):\n%s", n, logs.buf.String())
	}
}

// Reload (SIGHUP) re-reads files that a stat cannot tell apart.
func TestCertReloaderReload(t *testing.T) {
	f := newCertFiles(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.write(t, 1, t0)
	r, logs := newReloader(t, f)

	f.write(t, 2, t0) // same sizes (padded), same times
	if got := served(t, r); got != 1 {
		t.Fatalf("serial %d: the files looked unchanged, want 1 until Reload", got)
	}
	r.Reload()
	if got := served(t, r); got != 2 {
		t.Fatalf("serial %d after Reload, want 2", got)
	}

	f.writeMismatched(t, 3, t0)
	r.Reload()
	if got := served(t, r); got != 2 {
		t.Fatalf("serial %d after Reload of a mismatched pair, want the previous 2", got)
	}
	if n := logs.count(notReloaded); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.buf.String())
	}
}

// Handshakes during rotations always get a certificate (run with -race).
func TestCertReloaderConcurrentHandshakes(t *testing.T) {
	f := newCertFiles(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.write(t, 1, t0)
	r, _ := newReloader(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if cert, err := r.GetCertificate(nil); err != nil || cert == nil {
					t.Errorf("GetCertificate during a rotation: %v, %v", cert, err)
					return
				}
			}
		})
	}
	for i := range int64(20) {
		f.write(t, i+2, t0.Add(time.Duration(i+1)*time.Second))
		if i%5 == 0 {
			r.Reload()
		}
	}
	cancel()
	wg.Wait()
	if got := served(t, r); got != 21 {
		t.Fatalf("serial %d after the rotations, want the last, 21", got)
	}
}

// A bad certificate fails the start before the data directory or the
// development secret is created.
func TestRunRefusesBadCertificateFirst(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]string{"--db", filepath.Join(dir, "data", "users.db"),
		"--tls-cert-file", filepath.Join(dir, "missing.pem"), "--tls-key-file", filepath.Join(dir, "key.pem")},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), cfg, Env{Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "--tls-cert-file") {
		t.Fatalf("err %v, want one naming --tls-cert-file", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed start left %v in %s", entries, dir)
	}
}
