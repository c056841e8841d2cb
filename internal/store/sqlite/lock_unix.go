//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on the database file, without waiting,
// for as long as f stays open: the user cache is only correct while this
// process is the database's only writer. The lock is flock(2)'s, which
// SQLite's own (fcntl) locks do not see, so readers in other processes
// (usersd backup, the sqlite3 shell) are not kept out. It reports whether
// the cache may be used.
func lockFile(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, fmt.Errorf("%w: %s", ErrInUse, f.Name())
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: open: lock %s: %w", f.Name(), err)
	}
	return true, nil
}
