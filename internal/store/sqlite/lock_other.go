//go:build !unix

package sqlite

import "os"

// lockFile takes no lock where flock(2) is missing, and so the user cache
// stays off: another process could change the users behind it.
func lockFile(*os.File) (bool, error) { return false, nil }
