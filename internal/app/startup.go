package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
)

// listen binds both ports before anything is created on disk, so that a
// port in use leaves no new database or secret behind. Errors name the
// setting to change.
func listen(cfg Config) (grpcLis, httpLis net.Listener, err error) {
	grpcLis, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for gRPC on %s: %w (choose another address with --grpc-addr or USERS_GRPC_ADDR)", cfg.GRPCAddr, err)
	}
	httpLis, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return nil, nil, fmt.Errorf("listen for HTTP on %s: %w (choose another address with --http-addr or USERS_HTTP_ADDR)", cfg.HTTPAddr, err)
	}
	return limitConns(grpcLis, cfg.GRPC.MaxConns), httpLis, nil
}

func closeListeners(ls ...net.Listener) {
	for _, l := range ls {
		l.Close() // already closed once served: the error says only that
	}
}

// newFiles are the paths a start would create that do not exist before
// it: the missing directories of --db and of the data directory
// (outermost first), the database
// with its -wal and -shm, and the generated secret.
type newFiles []string

func filesToCreate(db string, key secret) newFiles {
	if isPostgres(db) {
		return nil
	}
	files := missingDirs(filepath.Dir(db))
	candidates := []string{db, db + "-wal", db + "-shm"}
	if key.generated && key.key == nil {
		// --data-dir may name another directory than --db's.
		for _, dir := range missingDirs(filepath.Dir(key.path)) {
			if !slices.Contains(files, dir) {
				files = append(files, dir)
			}
		}
		candidates = append(candidates, key.path)
	}
	for _, p := range candidates {
		if !exists(p) {
			files = append(files, p)
		}
	}
	return files
}

// missingDirs lists dir and the parents of it that do not exist, outermost
// first.
func missingDirs(dir string) newFiles {
	var dirs newFiles
	for ; !exists(dir); dir = filepath.Dir(dir) {
		dirs = append(newFiles{dir}, dirs...)
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// remove deletes the paths that exist now, files before the directories
// holding them; a directory something else put files in stays. (Another
// usersd starting on the same new --db at that moment could have created
// the database; only a start failing after it opened the database, on a
// fault such as a full disk, removes anything.)
func (n newFiles) remove(log *slog.Logger) {
	for i := len(n) - 1; i >= 0; i-- {
		if !exists(n[i]) {
			continue
		}
		if err := os.Remove(n[i]); err != nil {
			log.Warn("a failed start could not remove what it created", "path", n[i], "error", err)
		}
	}
}
