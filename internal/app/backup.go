package app

import (
	"context"
	"errors"
	"io"

	"github.com/usersd/usersd/internal/store/sqlite"
)

const backupUsage = `usage: usersd backup --to FILE [--db FILE]

Writes a consistent copy of the SQLite database to a new file, also while
usersd serve runs and writes (VACUUM INTO: one read transaction, beside the
writer). The copy holds every write acknowledged before the backup began; it
has mode 0600; an existing file is never replaced. To restore, stop the server
and start it with --db naming the copy.

flags:`

// BackupConfig is what `usersd backup` can be told.
type BackupConfig struct {
	DB string // the database, as usersd serve's --db
	To string // the new file
}

// ParseBackupConfig reads the flags of `usersd backup` and USERS_DB. On -h
// or --help it writes the help to help and returns flag.ErrHelp.
func ParseBackupConfig(args []string, getenv func(string) string, help io.Writer) (BackupConfig, error) {
	var c BackupConfig
	cmd := newCLI("usersd backup", backupUsage, func(name string) string {
		if name == "db" {
			return EnvName(name)
		}
		return ""
	})
	dbFlag(cmd.fs, &c.DB)
	cmd.fs.StringVar(&c.To, "to", "", "new `file` to write the copy to (required)")
	if _, err := cmd.parse(args, getenv, help); err != nil {
		return c, err
	}
	switch {
	case c.To == "":
		return c, errors.New("give --to, the new file to write the copy to")
	case isPostgres(c.DB):
		return c, errors.New("--db is a PostgreSQL URL: usersd backup copies SQLite databases (use pg_dump)")
	}
	return c, nil
}

// Backup copies the database, while a server may be using it.
func Backup(ctx context.Context, c BackupConfig) error {
	return sqlite.Backup(ctx, c.DB, c.To)
}
