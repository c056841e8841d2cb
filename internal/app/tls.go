package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"google.golang.org/grpc/credentials"
)

// TLSConfig names the server's certificate and key (PEM files). Both or
// neither: without them both listeners serve plaintext.
type TLSConfig struct {
	CertFile string
	KeyFile  string
}

func (c TLSConfig) enabled() bool { return c.CertFile != "" }

// certReloader serves the certificate of a pair of files and re-reads them
// when either changes, and on Reload (SIGHUP). A change is a new size or
// modification time, seen with a stat of each file at every handshake:
// ~3 µs (measured), against the handshake's own signature, so a rotated
// certificate is served from the next connection on, without a timer. A
// pair that does not load leaves the certificate in service and is logged
// once; it is tried again when the files change again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.Mutex
	cert *tls.Certificate
	seen pairStamp // of the files last read, whether they loaded or not
}

// pairStamp is what a stat tells of the two files; zero for a file that
// cannot be stat'ed (its read will say why).
type pairStamp [2]struct{ size, modNanos int64 }

// newCertReloader loads the pair, or says which flag to fix.
func newCertReloader(c TLSConfig, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: log}
	r.seen = r.stat()
	cert, err := loadPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	r.cert = cert
	return r, nil
}

// GetCertificate is the tls.Config hook of both listeners.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Stat before reading: a change made while reading shows as another
	// change at the next handshake, never as one already seen.
	if st := r.stat(); st != r.seen {
		r.reloadLocked(st, "files changed")
	}
	return r.cert, nil
}

// Reload re-reads the files even if they look unchanged.
func (r *certReloader) Reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloadLocked(r.stat(), "SIGHUP")
}

func (r *certReloader) reloadLocked(st pairStamp, why string) {
	r.seen = st
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate not reloaded, still serving the previous one", "trigger", why, "error", err)
		return
	}
	r.cert = cert
	r.log.Info("TLS certificate reloaded", "trigger", why,
		"serial", cert.Leaf.SerialNumber.Text(16), "not_after", cert.Leaf.NotAfter)
}

func (r *certReloader) stat() pairStamp {
	var st pairStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(name); err == nil {
			st[i].size, st[i].modNanos = fi.Size(), fi.ModTime().UnixNano()
		}
	}
	return st
}

// loadPair reads a certificate chain and its key, naming the flag of the
// file at fault.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-key-file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file %s and --tls-key-file %s are not a certificate and its key: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// serverTLS is the TLS configuration of both listeners. Each server adds
// its ALPN protocols: h2 for gRPC; h2 and http/1.1 for HTTP.
func serverTLS(r *certReloader) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// serverCredentials are the gRPC port's transport credentials with TLS.
// The gateway's calls do not pass them: they never leave the process.
//
// Not tls.NewListener around the TCP listener with no credentials: it
// works, but grpc-go then gives handlers no AuthInfo on TLS connections
// (nil, where these credentials give TLSInfo: ALPN h2, PrivacyAndIntegrity)
// and serves TLS clients that negotiated no ALPN protocol, which HTTP/2
// over TLS requires (measured; these credentials close such connections).
func serverCredentials(cfg *tls.Config) credentials.TransportCredentials {
	return credentials.NewTLS(cfg)
}

// reloadOnSIGHUP re-reads the certificate at each SIGHUP until the
// returned stop is called. SIGTERM and SIGINT are handled in cmd/usersd.
func reloadOnSIGHUP(r *certReloader) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				r.Reload()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}
