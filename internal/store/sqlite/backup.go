package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database at path to the new file
// to, while a server keeps writing to it. VACUUM INTO reads the database
// in one read transaction, which WAL lets run beside the writer, so the
// copy holds exactly the commits made before it began, and no free pages
// (nothing deleted reaches it). It is written under a temporary name,
// synced, then linked to to, which is never replaced: an existing file is
// an error, and a failed backup leaves no file named to.
func Backup(ctx context.Context, path, to string) error {
	src, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	// mode=rw: a mistyped path is an error, not a new empty database. Not
	// ro: a read-only connection that is the last to close (no server
	// running) leaves -wal and -shm files behind; this one only reads.
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: src}).EscapedPath()+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: backup: open %s: %w", path, err)
	}
	if _, err := os.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite: backup: %s exists; give a new file", to)
	}
	tmp, err := os.CreateTemp(filepath.Dir(to), "."+filepath.Base(to)+".*.tmp") // mode 0600: it holds personal data
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // once linked, only this name goes
	// VACUUM INTO fills an empty file (one that does not exist would get
	// the process's umask, not 0600).
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp.Name()); err != nil {
		tmp.Close()
		return fmt.Errorf("sqlite: backup: VACUUM INTO: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := os.Link(tmp.Name(), to); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return syncDir(filepath.Dir(to))
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sqlite: backup: sync %s: %w", dir, err)
	}
	return nil
}
