// Package app wires usersd together: configuration, the store, the gRPC
// server with its interceptor chain, health and reflection, the in-process
// channel the REST gateway uses, the HTTP server, and an orderly shutdown.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/store/sqlite"
	"github.com/usersd/usersd/service"
)

// Config is everything `usersd serve` can be told. Each flag is also an
// environment variable USERS_<FLAG> (upper snake case); a flag given on the
// command line wins over the environment.
type Config struct {
	GRPCAddr        string
	HTTPAddr        string
	DB              string
	LogLevel        slog.Level
	TrustedProxies  accesslog.TrustedProxies
	MaxBodyBytes    int64
	MaxClaimsBytes  int
	MaxClaimsDepth  int
	GRPCMaxRecv     int
	GRPC            GRPCBounds
	ShutdownTimeout time.Duration
	RequestTimeout  time.Duration
	DBQuickCheck    bool
	DBCacheBytes    int
	Postgres        PostgresConfig
	EventsRetention time.Duration
	Auth            AuthConfig
	Load            LoadConfig
	TLS             TLSConfig
}

// PostgresConfig tunes the PostgreSQL store (--db postgres://…); a SQLite
// store ignores it.
type PostgresConfig struct {
	MaxConns         int           // pool size of this instance
	StatementTimeout time.Duration // longest one SQL statement may run
	ConnectRetry     time.Duration // how long a start waits for the server
}

// LoadConfig bounds the work the server accepts at once.
type LoadConfig struct {
	MaxInFlight       int     // calls served at once; beyond, 503
	MaxInFlightWrites int     // writes among them; beyond, 503
	RatePerCaller     float64 // calls a second per caller; 0: no limit
	RateBurst         int     // bucket size of the per-caller limit
}

// AuthConfig says how bearer tokens are verified. With neither a secret
// nor a JWKS URL, a random secret is kept in the data directory.
type AuthConfig struct {
	SecretFile string // raw bytes, one trailing newline ignored
	Secret     string // USERS_JWT_SECRET (environment only: not on a command line)
	JWKSURL    string
	Issuer     string
	Audience   string
	RolesClaim string
	DataDir    string // holds the generated secret; "" means dataDir's default
}

// dataDir is where the generated secret lives: --data-dir, else the
// directory of a SQLite --db file, else ./data (PostgreSQL).
func (a AuthConfig) dataDir(db string) string {
	switch {
	case a.DataDir != "":
		return a.DataDir
	case isPostgres(db):
		return "data"
	}
	return filepath.Dir(db)
}

// GRPCBounds limit what gRPC clients may hold or do (contract §3), on every
// connection of the gRPC port. The REST gateway calls in process, through
// none; MaxHeaderBytes bounds its requests' headers too (fitGRPCMetadata).
type GRPCBounds struct {
	MaxStreams     int           // concurrent streams per connection
	MaxHeaderBytes int           // request metadata (HPACK-decoded size)
	MinPingEvery   time.Duration // clients pinging more often get GOAWAY
	MaxIdle        time.Duration // close connections without calls this long (0: never)
	MaxAge         time.Duration // then GOAWAY, however busy (0: never)
	MaxAgeGrace    time.Duration // for the calls in flight at MaxAge
	MaxConns       int           // concurrent TCP connections (0: no limit)
}

// SecretEnv holds an HS256 secret given directly; it has no flag, so the
// secret never shows in a process listing.
const SecretEnv = "USERS_JWT_SECRET"

const serveUsage = `usage: usersd serve [flags]

Serves the users API over gRPC and REST/JSON until SIGTERM or SIGINT. Each flag
can also be set by the environment variable shown beside it; a flag given on
the command line wins.

flags:`

// secretEnvHelp documents USERS_JWT_SECRET in the help of the commands
// that read it.
var secretEnvHelp = [][2]string{{SecretEnv, "the HS256 secret itself, instead of --jwt-secret-file (only in the environment, so it never shows in a process listing)"}}

// ParseConfig reads flags (args without the program and subcommand) and
// the USERS_* environment. On -h or --help it writes the help to help and
// returns flag.ErrHelp.
func ParseConfig(args []string, getenv func(string) string, help io.Writer) (Config, error) {
	var c Config
	cmd := newCLI("usersd serve", serveUsage, EnvName)
	cmd.envOnly = secretEnvHelp
	fs := cmd.fs
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST/HTTP listen address")
	dbFlag(fs, &c.DB)
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.Var(&c.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client in logs (default: none)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 64<<10, "largest REST request body; larger is 413")
	fs.IntVar(&c.MaxClaimsBytes, "max-claims-bytes", service.DefaultLimits.MaxClaimsBytes, "largest claims object, as compact JSON")
	fs.IntVar(&c.MaxClaimsDepth, "max-claims-depth", service.DefaultLimits.MaxClaimsDepth, "deepest claims nesting (the claims object is depth 1)")
	fs.IntVar(&c.GRPCMaxRecv, "grpc-max-recv-bytes", 4<<20, "largest gRPC request message; larger is RESOURCE_EXHAUSTED")
	grpcBoundFlags(fs, &c.GRPC)
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown on SIGTERM/SIGINT may take in all: in-flight requests, buffered events, the final checkpoint")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 30*time.Second, "longest a request may take (a client's sooner deadline stays); also bounds its wait for room in the event buffer")
	fs.BoolVar(&c.DBQuickCheck, "db-quick-check", true, "SQLite: check the database file (PRAGMA quick_check) at startup and refuse a damaged one; it reads the whole file, so turn it off for very large ones")
	fs.IntVar(&c.DBCacheBytes, "db-cache-bytes", sqlite.DefaultUserCacheBytes, "SQLite: memory for users kept to answer repeated reads of them without the database (0: none)")
	fs.IntVar(&c.Postgres.MaxConns, "db-max-conns", 16, "PostgreSQL: connections this instance keeps at most (instances × this must stay under the server's max_connections)")
	fs.DurationVar(&c.Postgres.StatementTimeout, "db-statement-timeout", 10*time.Second, "PostgreSQL: longest one SQL statement may run (0: no limit)")
	fs.DurationVar(&c.Postgres.ConnectRetry, "db-connect-retry", 30*time.Second, "PostgreSQL: how long a start keeps trying to reach the database before giving up (0: one try)")
	c.EventsRetention = 90 * 24 * time.Hour
	fs.Var((*days)(&c.EventsRetention), "events-retention", "how long analytic events are kept: a `duration` such as 36h, or days such as 90d")
	fs.IntVar(&c.Load.MaxInFlight, "max-in-flight", 256, "API calls served at once; beyond, 503 with Retry-After (0: no bound)")
	fs.IntVar(&c.Load.MaxInFlightWrites, "max-in-flight-writes", 64, "writes served at once; beyond, 503 with Retry-After (0: no bound)")
	fs.Float64Var(&c.Load.RatePerCaller, "rate-limit", 0, "API calls a second per caller (token subject); beyond, 429 with Retry-After (0: off)")
	fs.IntVar(&c.Load.RateBurst, "rate-limit-burst", 50, "calls a caller may make at once before --rate-limit applies")
	authFlags(fs, &c.Auth)
	fs.StringVar(&c.TLS.CertFile, "tls-cert-file", "", "PEM certificate (chain) for both listeners; with --tls-key-file, gRPC and HTTP serve TLS only. Re-read when it changes and on SIGHUP")
	fs.StringVar(&c.TLS.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	setting, err := cmd.parse(args, getenv, help)
	if err != nil {
		return c, err
	}
	c.Auth.Secret = getenv(SecretEnv)
	return c, c.validate(setting)
}

func grpcBoundFlags(fs *flag.FlagSet, b *GRPCBounds) {
	fs.IntVar(&b.MaxStreams, "grpc-max-concurrent-streams", 100, "concurrent streams per gRPC connection; more wait on the client")
	fs.IntVar(&b.MaxHeaderBytes, "grpc-max-header-bytes", 64<<10, "largest gRPC request metadata; REST requests whose headers would exceed it are 431")
	fs.DurationVar(&b.MinPingEvery, "grpc-keepalive-min-time", 30*time.Second, "shortest keepalive ping interval allowed to gRPC clients; pinging more often gets GOAWAY")
	fs.DurationVar(&b.MaxIdle, "grpc-max-connection-idle", 5*time.Minute, "close gRPC connections without calls for this long (0: never)")
	fs.DurationVar(&b.MaxAge, "grpc-max-connection-age", 30*time.Minute, "ask gRPC clients to reconnect after this long (0: never)")
	fs.DurationVar(&b.MaxAgeGrace, "grpc-max-connection-age-grace", time.Minute, "time calls in flight get to finish after --grpc-max-connection-age")
	fs.IntVar(&b.MaxConns, "grpc-max-connections", 128, "concurrent gRPC connections; more wait to be accepted (0: no limit)")
}

func dbFlag(fs *flag.FlagSet, db *string) {
	fs.StringVar(db, "db", "./data/users.db", "SQLite database file, or a postgres:// URL for PostgreSQL")
}

// authFlags are shared by `serve` and `token`, so a token is signed the
// way the server verifies it.
func authFlags(fs *flag.FlagSet, a *AuthConfig) {
	fs.StringVar(&a.DataDir, "data-dir", "", "`directory` of the generated JWT secret used when no key is configured (default: the directory of --db)")
	fs.StringVar(&a.SecretFile, "jwt-secret-file", "", "file holding the HS256 secret (at least 32 bytes; or set "+SecretEnv+")")
	fs.StringVar(&a.Issuer, "jwt-issuer", "", "required iss claim, when set")
	fs.StringVar(&a.Audience, "jwt-audience", "", "required aud claim, when set")
	fs.StringVar(&a.RolesClaim, "roles-claim", "roles", "token claim holding the caller's roles (an array of strings)")
	fs.StringVar(&a.JWKSURL, "jwks-url", "", "JWKS URL of the identity provider (RS256, ES256, EdDSA); replaces the HS256 secret")
}

// EnvName is the environment variable of a flag: grpc-addr → USERS_GRPC_ADDR.
func EnvName(flagName string) string {
	return "USERS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// validate checks the values together; setting names a flag's value as
// the operator gave it (see cli.parse).
func (c Config) validate(setting func(flag string) string) error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	// need is check for one flag: the error names its value and source.
	need := func(ok bool, flag, want string) {
		check(ok, "%s: %s", setting(flag), want)
	}
	need(c.GRPCAddr != "", "grpc-addr", "must not be empty")
	need(c.HTTPAddr != "", "http-addr", "must not be empty")
	need(c.DB != "", "db", "must not be empty")
	need(c.DBCacheBytes >= 0, "db-cache-bytes", "must not be negative")
	need(c.MaxBodyBytes >= 1024, "max-body-bytes", "must be at least 1024")
	need(c.MaxClaimsBytes >= 2, "max-claims-bytes", "must be at least 2")
	need(c.MaxClaimsDepth >= 1, "max-claims-depth", "must be at least 1")
	need(c.GRPCMaxRecv >= 1024, "grpc-max-recv-bytes", "must be at least 1024")
	need(c.GRPC.MaxStreams >= 1 && uint64(c.GRPC.MaxStreams) <= math.MaxUint32, "grpc-max-concurrent-streams", "must be between 1 and 2^32-1")
	need(c.GRPC.MaxHeaderBytes >= 8<<10 && uint64(c.GRPC.MaxHeaderBytes) <= math.MaxUint32, "grpc-max-header-bytes", "must be between 8192 and 2^32-1")
	need(c.GRPC.MinPingEvery > 0, "grpc-keepalive-min-time", "must be positive")
	need(c.GRPC.MaxIdle >= 0, "grpc-max-connection-idle", "must not be negative")
	need(c.GRPC.MaxAge >= 0, "grpc-max-connection-age", "must not be negative")
	need(c.GRPC.MaxAgeGrace > 0, "grpc-max-connection-age-grace", "must be positive")
	need(c.GRPC.MaxConns >= 0, "grpc-max-connections", "must not be negative")
	need(c.ShutdownTimeout > 0, "shutdown-timeout", "must be positive")
	need(c.RequestTimeout > 0, "request-timeout", "must be positive")
	need(c.EventsRetention >= time.Hour, "events-retention", "must be at least 1h")
	need(c.Postgres.MaxConns >= 1 && c.Postgres.MaxConns <= math.MaxInt32, "db-max-conns", "must be at least 1")
	need(c.Postgres.StatementTimeout >= 0, "db-statement-timeout", "must not be negative")
	need(c.Postgres.ConnectRetry >= 0, "db-connect-retry", "must not be negative")
	need(c.Auth.RolesClaim != "", "roles-claim", "must not be empty")
	need(c.Load.MaxInFlight >= 0, "max-in-flight", "must not be negative")
	need(c.Load.MaxInFlightWrites >= 0, "max-in-flight-writes", "must not be negative")
	// The contract promises no shedding below 8 concurrent writers.
	check((c.TLS.CertFile == "") == (c.TLS.KeyFile == ""), "--tls-cert-file and --tls-key-file go together: give both or neither")
	need(c.Load.MaxInFlightWrites == 0 || c.Load.MaxInFlightWrites >= 8, "max-in-flight-writes", "must be at least 8 (or 0 for no bound)")
	need(c.Load.MaxInFlight == 0 || c.Load.MaxInFlight >= 8, "max-in-flight", "must be at least 8 (or 0 for no bound)")
	need(c.Load.RatePerCaller >= 0, "rate-limit", "must not be negative")
	need(c.Load.RateBurst >= 1, "rate-limit-burst", "must be at least 1")
	keys := 0
	for _, set := range []bool{c.Auth.SecretFile != "", c.Auth.Secret != "", c.Auth.JWKSURL != ""} {
		if set {
			keys++
		}
	}
	check(keys <= 1, "give one of --jwt-secret-file, %s and --jwks-url, not several", SecretEnv)
	if c.Auth.JWKSURL != "" {
		need(strings.HasPrefix(c.Auth.JWKSURL, "https://") || strings.HasPrefix(c.Auth.JWKSURL, "http://"), "jwks-url", "not an http:// or https:// URL")
	}
	return errors.Join(errs...)
}

// isPostgres reports whether a --db value selects PostgreSQL.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// redactDB is a --db value fit for logs and errors: a PostgreSQL URL
// without its password (in the URL or as a password= parameter).
func redactDB(db string) string {
	if !isPostgres(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// days is a duration flag that also takes whole days ("90d").
type days time.Duration

func (d *days) String() string {
	if *d%days(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(time.Duration(*d)/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(*d).String()
}

var errNotDays = errors.New("not a number of days such as 90d, or a duration such as 36h")

func (d *days) Set(v string) error {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		count, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return errNotDays
		}
		*d = days(time.Duration(count) * 24 * time.Hour)
		return nil
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		return errNotDays
	}
	*d = days(dur)
	return nil
}
