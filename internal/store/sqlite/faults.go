package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/store"
)

// isUnavailable reports whether err is the driver saying that the database
// cannot be used right now (store.ErrUnavailable), as opposed to refusing
// the statement: decided by the result code, never by the message.
func isUnavailable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_FULL, // disk (or max_page_count) full
		sqlite3.SQLITE_IOERR,    // every SQLITE_IOERR_* (write, fsync, shm, ...)
		sqlite3.SQLITE_READONLY, // every SQLITE_READONLY_* (file, directory, recovery)
		sqlite3.SQLITE_CANTOPEN, // file or journal cannot be opened
		sqlite3.SQLITE_PERM,     // access denied by the OS
		sqlite3.SQLITE_BUSY,     // still locked after busy_timeout
		sqlite3.SQLITE_PROTOCOL: // WAL lock protocol kept failing
		return true
	}
	return false
}

// isCorrupt reports whether err is the driver saying the file is damaged
// or not a database.
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// dbFile is the database file as opened: its path and identity.
type dbFile struct {
	path, dir string
	info      os.FileInfo
}

func openedFile(f *os.File, path string) (dbFile, error) {
	info, err := f.Stat()
	if err != nil {
		return dbFile{}, fmt.Errorf("sqlite: open: %w", err)
	}
	return dbFile{path: path, dir: filepath.Dir(path), info: info}, nil
}

// check reports store.ErrUnavailable unless the file at the path is still
// the one opened (not removed, not replaced) and it and its directory are
// writable by their owner. SQLite alone would not notice: an open file
// descriptor keeps working after unlink and chmod, and root is not even
// checked. Two stats, a few microseconds (BenchmarkFileCheck).
func (f dbFile) check() error {
	info, err := os.Stat(f.path)
	switch {
	case err != nil:
		return fmt.Errorf("%w: database file: %w", store.ErrUnavailable, err)
	case !os.SameFile(info, f.info):
		return fmt.Errorf("%w: database file %s was replaced", store.ErrUnavailable, f.path)
	case info.Mode().Perm()&0o200 == 0:
		return fmt.Errorf("%w: database file %s is read-only", store.ErrUnavailable, f.path)
	}
	dir, err := os.Stat(f.dir)
	switch {
	case err != nil:
		return fmt.Errorf("%w: database directory: %w", store.ErrUnavailable, err)
	case dir.Mode().Perm()&0o200 == 0:
		// SQLite creates and deletes the -wal and -shm files there.
		return fmt.Errorf("%w: database directory %s is read-only", store.ErrUnavailable, f.dir)
	}
	return nil
}
