// Package app wires usersd together: configuration, the store, the gRPC
// server, the in-memory channel the REST gateway uses, the HTTP server, and
// an orderly shutdown.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Config is everything `usersd serve` can be told. Each flag is also an
// environment variable USERS_<FLAG> (upper snake case); a flag given on the
// command line wins over the environment.
type Config struct {
	GRPCAddr        string
	HTTPAddr        string
	DB              string
	LogLevel        slog.Level
	MaxBodyBytes    int64
	MaxClaimsBytes  int
	MaxClaimsDepth  int
	GRPCMaxRecv     int
	ShutdownTimeout time.Duration
}

// ParseConfig reads flags (args without the program and subcommand) and
// the USERS_* environment.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("usersd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST/HTTP listen address")
	fs.StringVar(&c.DB, "db", "./data/users.db", "SQLite database file (a postgres:// URL is reserved for PostgreSQL)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 64<<10, "largest REST request body; larger is 413")
	fs.IntVar(&c.MaxClaimsBytes, "max-claims-bytes", 16<<10, "largest claims object, as compact JSON")
	fs.IntVar(&c.MaxClaimsDepth, "max-claims-depth", 10, "deepest claims nesting (the claims object is depth 1)")
	fs.IntVar(&c.GRPCMaxRecv, "grpc-max-recv-bytes", 4<<20, "largest gRPC request message; larger is RESOURCE_EXHAUSTED")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on SIGTERM/SIGINT")

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if v := getenv(env); v != "" && !set[f.Name] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.validate()
}

// EnvName is the environment variable of a flag: grpc-addr → USERS_GRPC_ADDR.
func EnvName(flagName string) string {
	return "USERS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.GRPCAddr != "", "--grpc-addr must not be empty")
	check(c.HTTPAddr != "", "--http-addr must not be empty")
	check(c.DB != "", "--db must not be empty")
	check(c.MaxBodyBytes >= 1024, "--max-body-bytes must be at least 1024")
	check(c.MaxClaimsBytes >= 2, "--max-claims-bytes must be at least 2")
	check(c.MaxClaimsDepth >= 1, "--max-claims-depth must be at least 1")
	check(c.GRPCMaxRecv >= 1024, "--grpc-max-recv-bytes must be at least 1024")
	check(c.ShutdownTimeout > 0, "--shutdown-timeout must be positive")
	return errors.Join(errs...)
}

// isPostgres reports whether the --db value selects PostgreSQL.
func (c Config) isPostgres() bool {
	return strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://")
}
