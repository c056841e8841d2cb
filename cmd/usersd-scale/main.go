// Command usersd-scale is the scale benchmark of usersd (README, "Scale
// benchmark"): it seeds a database with many users through the store's
// bulk path, then runs the real usersd binary on it and measures over gRPC.
//
//	go run ./cmd/usersd-scale --db ./scale/users.db --users 1000000 --seed
//	go run ./cmd/usersd-scale --db ./scale/users.db --users 1000000 --bench
//	go run ./cmd/usersd-scale --db postgres://postgres@127.0.0.1:5432/usersd_scale --users 1000000 --seed --bench
//
// It is a command, not a test: go test never runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type config struct {
	db       string
	users    int
	seed     bool
	bench    bool
	duration time.Duration
	usersd   string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "usersd-scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("usersd-scale", flag.ContinueOnError)
	fs.StringVar(&c.db, "db", "", "SQLite database file, or a postgres:// URL (the database must exist)")
	fs.IntVar(&c.users, "users", 1_000_000, "number of users seeded, and expected by --bench")
	fs.BoolVar(&c.seed, "seed", false, "seed --users users into the database, which must hold none")
	fs.BoolVar(&c.bench, "bench", false, "run usersd on the database and measure it")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long each scenario runs at each client count")
	fs.StringVar(&c.usersd, "usersd", "", "usersd binary to benchmark (default: go build ./cmd/usersd, from the module root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case c.db == "":
		return errors.New("--db is required")
	case !c.seed && !c.bench:
		return errors.New("nothing to do: give --seed, --bench, or both")
	case c.users < 1:
		return errors.New("--users must be at least 1")
	case c.duration <= 0:
		return errors.New("--duration must be positive")
	}
	if c.seed {
		if err := seed(ctx, c, out); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	if c.bench {
		if err := bench(ctx, c, out); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// isPostgres tells a PostgreSQL URL from a SQLite path, as usersd does.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}
