package sqlite

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

func TestBackup(t *testing.T) {
	s := openTemp(t)
	var ids []string
	for range 3 {
		u, err := s.CreateUser(t.Context(), store.User{ID: uuid.NewString(), Claims: `{"a":1}`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	key, err := s.CursorKey(t.Context()) // as a server does when it starts
	if err != nil {
		t.Fatal(err)
	}
	src := s.file.path
	dir := t.TempDir()
	to := filepath.Join(dir, "backup.db")

	// Taken while the store is open, as from a running server.
	if err := Backup(t.Context(), src, to); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(to)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("backup left %v, want only the backup", entries)
	}
	restored := openAt(t, to) // QuickCheck: the copy is sound
	for _, id := range ids {
		if _, err := restored.GetUser(t.Context(), id); err != nil {
			t.Fatalf("user %s in the backup: %v", id, err)
		}
	}
	if got, err := restored.CursorKey(t.Context()); err != nil || string(got) != string(key) {
		t.Fatalf("cursor key not carried over (%v): cursors would break on restore", err)
	}

	// Of a stopped server's database too, leaving nothing beside it.
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := Backup(t.Context(), src, filepath.Join(dir, "stopped.db")); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(src)); len(entries) != 1 {
		t.Errorf("a backup of a stopped server's database left %v beside it", entries)
	}

	// Never replaces a file, never creates a database where there is none.
	if err := Backup(t.Context(), src, to); err == nil {
		t.Fatal("a second backup to the same file succeeded")
	}
	missing := filepath.Join(dir, "missing.db")
	if err := Backup(t.Context(), missing, filepath.Join(dir, "other.db")); err == nil {
		t.Fatal("a backup of a missing database succeeded")
	}
	for _, p := range []string{missing, filepath.Join(dir, "other.db")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want no file", p, err)
		}
	}
}
