package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/auth"
)

// generatedSecretName is the file, next to the database, holding the
// secret usersd creates when no key is configured.
const generatedSecretName = "jwt-secret"

// secret is an HS256 key and where it came from.
type secret struct {
	key       []byte
	path      string // the file it was read from or written to, if any
	generated bool   // no key was configured: it is the data directory's own
	created   bool   // created by this call
}

// loadSecret finds the HS256 secret: the configured file, USERS_JWT_SECRET,
// or else the data directory's generated one (created on first use).
func loadSecret(a AuthConfig, db string) (secret, error) {
	switch {
	case a.SecretFile != "":
		key, err := readSecretFile(a.SecretFile)
		return secret{key: key, path: a.SecretFile}, err
	case a.Secret != "":
		return secret{key: []byte(a.Secret)}, nil
	}
	path := filepath.Join(filepath.Dir(db), generatedSecretName)
	key, err := readSecretFile(path)
	if err == nil {
		return secret{key: key, path: path, generated: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return secret{}, err
	}
	key, err = createSecretFile(path)
	return secret{key: key, path: path, generated: true, created: true}, err
}

// exposed reports whether the secret's file can be read by its group or by
// others: anyone who can read it can mint admin tokens.
func (s secret) exposed() (fs.FileMode, bool) {
	if s.path == "" {
		return 0, false
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, false // it was just read; a vanished file is not this check's business
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o077 != 0
}

// readSecretFile returns the raw bytes of a secret file, without one
// trailing newline (so `echo secret > file` works).
func readSecretFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) < auth.MinSecretBytes {
		return nil, fmt.Errorf("JWT secret in %s has %d bytes; at least %d are required", path, len(data), auth.MinSecretBytes)
	}
	return data, nil
}

// createSecretFile writes 32 random bytes, hex-encoded, readable by the
// owner only. O_EXCL: two processes starting at once never overwrite each
// other's secret; the loser reads the winner's.
func createSecretFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create JWT secret: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	key := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSecretFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create JWT secret: %w", err)
	}
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	return key, f.Close()
}

// newVerifier builds the token verifier the configuration asks for. The
// returned secret is set when tokens are HS256 (so startup can print one).
func newVerifier(ctx context.Context, cfg Config, log *slog.Logger) (*auth.Verifier, secret, error) {
	opts := auth.Options{Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, RolesClaim: cfg.Auth.RolesClaim}
	if cfg.Auth.JWKSURL != "" {
		v, err := auth.NewJWKS(ctx, cfg.Auth.JWKSURL, opts, auth.JWKSOptions{
			RefreshInterval:   time.Hour,
			UnknownKIDRefresh: rate.Every(time.Minute),
			OnRefreshError: func(err error) {
				log.Warn("JWKS fetch failed; tokens are checked against the keys already fetched, if any (/readyz is 503 until there are some)", "url", cfg.Auth.JWKSURL, "error", err)
			},
		})
		return v, secret{}, err
	}
	s, err := loadSecret(cfg.Auth, cfg.DB)
	if err != nil {
		return nil, secret{}, err
	}
	v, err := auth.NewHMAC(s.key, opts)
	return v, s, err
}
