package app

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runToFailure runs the server in process, expecting it to fail to start.
func runToFailure(t *testing.T, args ...string) error {
	t.Helper()
	cfg, err := ParseConfig(append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...), env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), cfg, Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Listening: func(Addrs) {
		t.Errorf("the server started")
	}})
	if err == nil {
		t.Fatal("Run returned no error")
	}
	return err
}

func TestStartWithAPortInUseCreatesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "users.db")
	for flag, env := range map[string]string{"--grpc-addr": "USERS_GRPC_ADDR", "--http-addr": "USERS_HTTP_ADDR"} {
		err := runToFailure(t, "--db", db, flag, busy.Addr().String())
		if !strings.Contains(err.Error(), flag) || !strings.Contains(err.Error(), env) {
			t.Errorf("%s in use: %v, want an error naming %s and %s", flag, err, flag, env)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%s in use: the failed start left %v", flag, entries)
		}
	}
}

// A start that fails after it opened the database (here: the generated
// secret cannot be created, its path being a dangling symlink) removes the
// database files it created, and nothing else.
func TestFailedStartRemovesWhatItCreated(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, generatedSecretName)); err != nil {
		t.Fatal(err)
	}
	err := runToFailure(t, "--db", filepath.Join(dir, "users.db"))
	if !strings.Contains(err.Error(), "JWT secret") {
		t.Fatalf("err %v", err)
	}
	if left := tree(t, dir); !slices.Equal(left, []string{".", "jwt-secret", "keep"}) {
		t.Fatalf("left %v", left)
	}
}

// The directories of --db a start creates are removed too, unless
// something else put files in them.
func TestNewFilesRemoval(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a", "b", "users.db")
	created := filesToCreate(db, secret{generated: true, path: filepath.Join(dir, "a", "b", generatedSecretName)})
	want := []string{"a", "a/b", "a/b/users.db", "a/b/users.db-wal", "a/b/users.db-shm", "a/b/jwt-secret"}
	if len(created) != len(want) {
		t.Fatalf("filesToCreate %v, want %v", created, want)
	}
	for i, p := range created {
		if p != filepath.Join(dir, want[i]) {
			t.Fatalf("filesToCreate %v, want %v", created, want)
		}
	}
	create := func() {
		if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range created[2:] {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	create()
	created.remove(log)
	if left := tree(t, dir); !slices.Equal(left, []string{"."}) {
		t.Fatalf("left %v", left)
	}

	create()
	if err := os.WriteFile(filepath.Join(dir, "a", "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	created.remove(log)
	if left := tree(t, dir); !slices.Equal(left, []string{".", "a", "a/other"}) {
		t.Fatalf("left %v", left)
	}

	// What existed before is not on the list.
	if again := filesToCreate(db, secret{generated: true, key: []byte("k")}); len(again) != 4 || again[0] != filepath.Join(dir, "a", "b") {
		t.Fatalf("filesToCreate with a/ present and a secret found: %v", again)
	}
}

// tree lists the paths under dir, relative to it.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, path)
		paths = append(paths, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// A failed start also removes a --data-dir it created for the secret.
func TestFailedStartRemovesANewDataDir(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	runToFailure(t, "--db", filepath.Join(dir, "db", "users.db"), "--data-dir", filepath.Join(dir, "state", "dev"), "--http-addr", busy.Addr().String())
	if left := tree(t, dir); !slices.Equal(left, []string{"."}) {
		t.Fatalf("left %v", left)
	}
	key := secret{path: filepath.Join(dir, "state", "dev", generatedSecretName), generated: true}
	files := filesToCreate(filepath.Join(dir, "db", "users.db"), key)
	for _, want := range []string{filepath.Join(dir, "state"), filepath.Join(dir, "state", "dev"), key.path} {
		if !slices.Contains(files, want) {
			t.Errorf("files to create %v lack %s", files, want)
		}
	}
}
