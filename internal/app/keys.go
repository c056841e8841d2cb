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

// generatedSecretName is the file, in the data directory, holding the
// secret usersd creates when no key is configured.
const generatedSecretName = "jwt-secret"

// secret is an HS256 key and where it came from.
type secret struct {
	key       []byte // nil: the generated secret does not exist yet
	path      string // the file it was read from or written to, if any
	generated bool   // no key was configured: it is the data directory's own
	created   bool   // created by ensure, in this start
}

// findSecret finds the HS256 secret that `serve` and `token` both use: the
// configured file, USERS_JWT_SECRET, or else the generated one in the data
// directory. It creates nothing: a generated secret that does not exist yet
// comes back with its path and no key (see ensure).
func findSecret(a AuthConfig, db string) (secret, error) {
	switch {
	case a.SecretFile != "":
		key, err := readSecretFile(a.SecretFile)
		return secret{key: key, path: a.SecretFile}, err
	case a.Secret != "":
		return secret{key: []byte(a.Secret)}, nil
	case isPostgres(db):
		// Several instances share a PostgreSQL database: a secret generated
		// by one would not be known to the others.
		return secret{}, fmt.Errorf("--db is a PostgreSQL URL: configure a key with --jwt-secret-file, %s or --jwks-url", SecretEnv)
	}
	path := filepath.Join(a.dataDir(db), generatedSecretName)
	key, err := readSecretFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return secret{path: path, generated: true}, nil
	}
	if err != nil {
		return secret{}, err
	}
	return secret{key: key, path: path, generated: true}, nil
}

// ensure creates the generated secret when findSecret found none. Only
// `serve` calls it, after the database opened: a start that fails earlier
// (a port in use, an unwritable --db) leaves no secret behind.
func (s secret) ensure() (secret, error) {
	if s.key != nil {
		return s, nil
	}
	key, err := createSecretFile(s.path)
	if err != nil {
		return secret{}, err
	}
	s.key, s.created = key, true
	return s, nil
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
// owner only, in a directory that exists (the database's). O_EXCL: two
// processes starting at once never overwrite each other's secret; the
// loser reads the winner's.
func createSecretFile(path string) ([]byte, error) {
	// --data-dir may name a directory the database did not create.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create JWT secret: %w (set --data-dir or USERS_DATA_DIR to a directory usersd can write)", err)
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

// serveKey is the HS256 secret `serve` will verify with, found before
// anything is created; none with --jwks-url.
func serveKey(cfg Config) (secret, error) {
	if cfg.Auth.JWKSURL != "" {
		return secret{}, nil
	}
	return findSecret(cfg.Auth, cfg.DB)
}

// newVerifier builds the token verifier the configuration asks for, HS256
// ones with key (creating the generated secret if it does not exist yet).
// The returned secret is set when tokens are HS256 (so startup can print
// one).
func newVerifier(ctx context.Context, cfg Config, key secret, log *slog.Logger) (*auth.Verifier, secret, error) {
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
	key, err := key.ensure()
	if err != nil {
		return nil, secret{}, err
	}
	v, err := auth.NewHMAC(key.key, opts)
	return v, key, err
}
