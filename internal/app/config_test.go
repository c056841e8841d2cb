package app

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:9090" || c.HTTPAddr != "127.0.0.1:8080" || c.DB != "./data/users.db" ||
		c.MaxBodyBytes != 64<<10 || c.MaxClaimsBytes != 16<<10 || c.MaxClaimsDepth != 10 ||
		c.GRPCMaxRecv != 4<<20 || c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 15*time.Second ||
		c.RequestTimeout != 30*time.Second || !c.DBQuickCheck || c.DBCacheBytes != 8<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	want := GRPCBounds{MaxStreams: 100, MaxHeaderBytes: 64 << 10, MinPingEvery: 30 * time.Second,
		MaxIdle: 5 * time.Minute, MaxAge: 30 * time.Minute, MaxAgeGrace: time.Minute, MaxConns: 128}
	if c.GRPC != want {
		t.Fatalf("gRPC bounds %+v, want %+v", c.GRPC, want)
	}
}

func TestParseConfigGRPCBounds(t *testing.T) {
	c, err := ParseConfig([]string{"--grpc-max-concurrent-streams", "8", "--grpc-max-connection-age", "0"},
		env(map[string]string{
			"USERS_GRPC_MAX_CONCURRENT_STREAMS": "9", "USERS_GRPC_MAX_HEADER_BYTES": "16384",
			"USERS_GRPC_KEEPALIVE_MIN_TIME": "10s", "USERS_GRPC_MAX_CONNECTION_IDLE": "1m",
			"USERS_GRPC_MAX_CONNECTION_AGE_GRACE": "5s", "USERS_GRPC_MAX_CONNECTIONS": "0",
		}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := GRPCBounds{MaxStreams: 8, MaxHeaderBytes: 16 << 10, MinPingEvery: 10 * time.Second,
		MaxIdle: time.Minute, MaxAge: 0, MaxAgeGrace: 5 * time.Second, MaxConns: 0}
	if c.GRPC != want {
		t.Fatalf("gRPC bounds %+v, want %+v", c.GRPC, want)
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	c, err := ParseConfig(
		[]string{"--http-addr", "127.0.0.1:1"},
		env(map[string]string{"USERS_HTTP_ADDR": "127.0.0.1:2", "USERS_DB": "/tmp/x.db", "USERS_LOG_LEVEL": "debug", "USERS_SHUTDOWN_TIMEOUT": "3s",
			"USERS_REQUEST_TIMEOUT": "7s", "USERS_DB_QUICK_CHECK": "false"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:1" {
		t.Errorf("flag should win over env: %q", c.HTTPAddr)
	}
	if c.DB != "/tmp/x.db" || c.LogLevel != slog.LevelDebug || c.ShutdownTimeout != 3*time.Second ||
		c.RequestTimeout != 7*time.Second || c.DBQuickCheck {
		t.Errorf("env not applied: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"case=bad env value":     {nil, map[string]string{"USERS_MAX_BODY_BYTES": "lots"}, "USERS_MAX_BODY_BYTES"},
		"case=out of range":      {[]string{"--max-claims-depth", "0"}, nil, "--max-claims-depth"},
		"case=unknown flag":      {[]string{"--nope"}, nil, "nope"},
		"case=stray argument":    {[]string{"extra"}, nil, "extra"},
		"case=empty db":          {[]string{"--db", ""}, nil, "--db"},
		"case=negative shutdown": {[]string{"--shutdown-timeout", "-1s"}, nil, "--shutdown-timeout"},
		"case=zero request":      {[]string{"--request-timeout", "0s"}, nil, "--request-timeout"},
		"case=no streams":        {[]string{"--grpc-max-concurrent-streams", "0"}, nil, "--grpc-max-concurrent-streams"},
		"case=streams overflow":  {[]string{"--grpc-max-concurrent-streams", "4294967296"}, nil, "--grpc-max-concurrent-streams"},
		"case=tiny metadata":     {nil, map[string]string{"USERS_GRPC_MAX_HEADER_BYTES": "1024"}, "USERS_GRPC_MAX_HEADER_BYTES"},
		"case=zero ping time":    {[]string{"--grpc-keepalive-min-time", "0s"}, nil, "--grpc-keepalive-min-time"},
		"case=negative idle":     {[]string{"--grpc-max-connection-idle", "-1s"}, nil, "--grpc-max-connection-idle"},
		"case=negative age":      {[]string{"--grpc-max-connection-age", "-1m"}, nil, "--grpc-max-connection-age"},
		"case=zero grace":        {[]string{"--grpc-max-connection-age-grace", "0s"}, nil, "--grpc-max-connection-age-grace"},
		"case=negative conns":    {[]string{"--grpc-max-connections", "-1"}, nil, "--grpc-max-connections"},
		"case=negative cache":    {nil, map[string]string{"USERS_DB_CACHE_BYTES": "-1"}, "USERS_DB_CACHE_BYTES"},
		"case=tls cert alone":    {[]string{"--tls-cert-file", "c.pem"}, nil, "--tls-key-file"},
		"case=tls key alone":     {nil, map[string]string{"USERS_TLS_KEY_FILE": "k.pem"}, "--tls-cert-file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigTLS(t *testing.T) {
	c, err := ParseConfig(nil, env(map[string]string{"USERS_TLS_CERT_FILE": "c.pem", "USERS_TLS_KEY_FILE": "k.pem"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS != (TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}) {
		t.Fatalf("TLS %+v", c.TLS)
	}
}

// Each configuration error is one line naming the offending value where
// it was given (flag or environment) and what is expected.
func TestParseConfigErrorMessages(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"case=env not a number":      {nil, map[string]string{"USERS_MAX_BODY_BYTES": "abc"}, `USERS_MAX_BODY_BYTES="abc": not a whole number of bytes`},
		"case=flag not a number":     {[]string{"--max-claims-depth", "ten"}, nil, `--max-claims-depth="ten": not a whole number`},
		"case=out of range":          {[]string{"--max-body-bytes=99999999999999999999"}, nil, `--max-body-bytes="99999999999999999999": out of range`},
		"case=not a duration":        {nil, map[string]string{"USERS_SHUTDOWN_TIMEOUT": "15"}, `USERS_SHUTDOWN_TIMEOUT="15": not a duration such as 30s, 5m or 1h30m`},
		"case=not a bool":            {[]string{"--db-quick-check=maybe"}, nil, `--db-quick-check="maybe": not true or false`},
		"case=not a level":           {nil, map[string]string{"USERS_LOG_LEVEL": "loud"}, `USERS_LOG_LEVEL="loud": not a log level: debug, info, warn or error`},
		"case=not a number":          {[]string{"--rate-limit", "fast"}, nil, `--rate-limit="fast": not a number`},
		"case=not days":              {nil, map[string]string{"USERS_EVENTS_RETENTION": "3x"}, `USERS_EVENTS_RETENTION="3x": not a number of days such as 90d, or a duration such as 36h`},
		"case=below minimum by env":  {nil, map[string]string{"USERS_MAX_CLAIMS_DEPTH": "0"}, `USERS_MAX_CLAIMS_DEPTH="0": must be at least 1`},
		"case=below minimum by flag": {[]string{"--max-body-bytes", "12"}, map[string]string{"USERS_MAX_BODY_BYTES": "99"}, `--max-body-bytes="12": must be at least 1024`},
		"case=not a URL":             {nil, map[string]string{"USERS_JWKS_URL": "idp.example"}, `USERS_JWKS_URL="idp.example": not an http:// or https:// URL`},
		"case=unknown flag":          {[]string{"--nope"}, nil, "flag provided but not defined: -nope (usersd serve -h lists the flags)"},
	} {
		t.Run(name, func(t *testing.T) {
			var help strings.Builder
			_, err := ParseConfig(tc.args, env(tc.env), &help)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err %q, want %q", err, tc.want)
			}
			if help.Len() != 0 {
				t.Fatalf("an error printed help:\n%s", help.String())
			}
		})
	}
	// Every bad value is reported, one line each.
	_, err := ParseConfig(nil, env(map[string]string{"USERS_MAX_BODY_BYTES": "abc", "USERS_MAX_CLAIMS_BYTES": "def"}), io.Discard)
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("err %q, want two lines", err)
	}
}

// The help lists every flag with its environment variable, and the
// variables only the environment gives.
func TestServeHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var help strings.Builder
		_, err := ParseConfig([]string{arg}, env(nil), &help)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: err %v, want flag.ErrHelp", arg, err)
		}
		out := help.String()
		for _, name := range []string{"grpc-addr", "db", "max-body-bytes", "jwks-url", "jwt-secret-file", "events-retention", "log-level"} {
			if !regexp.MustCompile(`(?m)^  --` + name + `\b.*\s` + EnvName(name) + `$`).MatchString(out) {
				t.Errorf("%s: no line for --%s with %s:\n%s", arg, name, EnvName(name), out)
			}
		}
		if !strings.Contains(out, SecretEnv) || !strings.Contains(out, `(default "127.0.0.1:9090")`) {
			t.Errorf("%s: help lacks %s or a default:\n%s", arg, SecretEnv, out)
		}
	}
}

func TestTokenHelp(t *testing.T) {
	var help strings.Builder
	if _, err := ParseTokenConfig([]string{"-h"}, env(nil), &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	out := help.String()
	if !regexp.MustCompile(`(?m)^  --db string\s+USERS_DB$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  --role role\s*$`).MatchString(out) || !strings.Contains(out, "admin, issuer, auditor") {
		t.Fatalf("token help:\n%s", out)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("grpc-max-recv-bytes"); got != "USERS_GRPC_MAX_RECV_BYTES" {
		t.Fatal(got)
	}
}

func TestParseConfigPostgres(t *testing.T) {
	c, err := ParseConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (PostgresConfig{MaxConns: 16, StatementTimeout: 10 * time.Second, ConnectRetry: 30 * time.Second}); c.Postgres != want {
		t.Fatalf("defaults %+v, want %+v", c.Postgres, want)
	}
	c, err = ParseConfig([]string{"--db-statement-timeout", "0"}, env(map[string]string{
		"USERS_DB_MAX_CONNS": "4", "USERS_DB_CONNECT_RETRY": "2m",
	}), io.Discard)
	if want := (PostgresConfig{MaxConns: 4, ConnectRetry: 2 * time.Minute}); err != nil || c.Postgres != want {
		t.Fatalf("%+v (%v), want %+v", c.Postgres, err, want)
	}
	for _, args := range [][]string{
		{"--db-max-conns", "0"},
		{"--db-max-conns", "3000000000"},
		{"--db-statement-timeout", "-1s"},
		{"--db-connect-retry", "-1s"},
	} {
		if _, err := ParseConfig(args, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: err %v, want one naming the flag", args, err)
		}
	}
}

func TestRedactDB(t *testing.T) {
	for in, want := range map[string]string{
		"./data/users.db":                       "./data/users.db",
		"postgres://u:secret@db:5432/users":     "postgres://u:xxxxx@db:5432/users",
		"postgresql://db/users?password=secret": "postgresql://db/users?password=xxxxx",
		"postgres://db/users?sslmode=require":   "postgres://db/users?sslmode=require",
		"postgres://u:secret@db:port/users":     "postgres://(unparsable URL)",
	} {
		if got := redactDB(in); got != want {
			t.Errorf("redactDB(%q) = %q, want %q", in, got, want)
		}
	}
}

// An unreachable PostgreSQL server fails the start with the URL, without
// its password, and the flag to change.
func TestOpenStorePostgresUnreachable(t *testing.T) {
	c, err := ParseConfig([]string{"--db", "postgres://usersd:secret@127.0.0.1:1/users", "--db-connect-retry", "0"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openStore(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "--db") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err %v, want one naming the server and --db, without the password", err)
	}
}

func TestParseConfigTrustedProxies(t *testing.T) {
	c, err := ParseConfig(nil, env(nil), io.Discard)
	if err != nil || len(c.TrustedProxies) != 0 {
		t.Fatalf("default trusted proxies %v (%v), want none", c.TrustedProxies, err)
	}
	c, err = ParseConfig(nil, env(map[string]string{"USERS_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1"}), io.Discard)
	if err != nil || c.TrustedProxies.String() != "10.0.0.0/8,192.0.2.1/32" {
		t.Fatalf("trusted proxies %v (%v)", c.TrustedProxies, err)
	}
	_, err = ParseConfig([]string{"--trusted-proxies", "10.0.0.0/8,proxy.example"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "proxy.example") {
		t.Fatalf("err %v, want one naming the bad entry", err)
	}
}
