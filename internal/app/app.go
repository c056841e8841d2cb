package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/usersd/usersd/gateway"
	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/deadline"
	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/limits"
	"github.com/usersd/usersd/internal/metrics"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/postgres"
	"github.com/usersd/usersd/internal/store/sqlite"
	"github.com/usersd/usersd/service"
)

// Addrs are the addresses the server actually listens on (useful with
// port 0).
type Addrs struct {
	GRPC, HTTP string
}

// Env is what Run needs from its surroundings.
type Env struct {
	Log *slog.Logger
	// Stdout receives the development banner (a ready admin token and
	// sample commands) when no key is configured. Never logs.
	Stdout io.Writer
	// Listening, when set, is called once both listeners are bound.
	Listening func(Addrs)
}

// Run serves until ctx is cancelled, then shuts down in order: stop
// accepting, let in-flight requests finish (bounded), close the database.
func Run(ctx context.Context, cfg Config, env Env) error {
	return run(ctx, cfg, env, seams{})
}

// seams are what benchmarks vary to measure a part against a baseline.
type seams struct {
	// dialGateway, when set, connects the gateway to the gRPC port (the
	// benchmarks' baseline) instead of the in-process channel.
	dialGateway  func(tcpAddr string) (*grpc.ClientConn, error)
	authenticate grpcauth.AuthFunc // nil: the configured token verification
	noEvents     bool              // record no analytic events
	// holdEvents keeps the asynchronous events buffered until shutdown,
	// so the allocations of a request do not depend on when a batch
	// happens to be written.
	holdEvents bool
}

// run is Run with its seams exposed to benchmarks. It builds the parts in
// order (listeners, store, verifier, telemetry, events, gRPC, REST),
// serves, and undoes them in reverse through its defers.
func run(ctx context.Context, cfg Config, env Env, sm seams) error {
	log := env.Log
	// First: a bad certificate fails the start before anything is created.
	var certs *certReloader
	if cfg.TLS.enabled() {
		var err error
		if certs, err = newCertReloader(cfg.TLS, log); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		defer reloadOnSIGHUP(certs)()
	}
	// Nothing is created on disk until the key is known to be usable and
	// both ports are bound, the likeliest failures; files created by a
	// start that fails later are removed (after the database is closed).
	key, err := serveKey(cfg)
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	grpcLis, httpLis, err := listen(cfg)
	if err != nil {
		return err
	}
	defer closeListeners(grpcLis, httpLis) // if never served; the servers close them too
	started := false
	created := filesToCreate(cfg.DB, key)
	defer func() {
		if !started {
			created.remove(log)
		}
	}()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	// stopBy is when shutdown must be complete, set when it begins (or by
	// the first closing step, after a failed start). The closing steps
	// share that one budget, each keeping back room for those after it.
	var stopBy time.Time
	reserve := closeReserve(cfg.ShutdownTimeout)
	closeCtx := func(keep time.Duration) (context.Context, context.CancelFunc) {
		if stopBy.IsZero() {
			stopBy = time.Now().Add(cfg.ShutdownTimeout)
		}
		return context.WithDeadline(context.Background(), stopBy.Add(-keep))
	}
	defer func() {
		ctx, cancel := closeCtx(0)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			log.Error("closing the database", "error", err)
		}
	}()
	// The generated secret is created once the database opened: an
	// unwritable --db is reported as such, not as a secret error.
	verifier, key, err := newVerifier(ctx, cfg, key, log)
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	authenticate := sm.authenticate
	if authenticate == nil {
		authenticate = auth.AuthFunc(verifier)
	}

	reg, access := newTelemetry(cfg, log)
	st = metrics.InstrumentStore(st, reg)

	writer, recorder, stopRetention := startEvents(cfg, st, log, reg, sm)
	// Closed after the servers stopped (deferred after them, so it runs
	// first): every event of every finished call is written, unless the
	// database fails until the close deadline.
	defer func() {
		ctx, cancel := closeCtx(reserve)
		defer cancel()
		writer.Close(ctx)
	}()
	defer stopRetention()

	// The gateway calls the users service in process, through the gRPC
	// server's own interceptor chain: every REST call passes it, without
	// a TCP hop, HTTP/2 framing or encoding the messages.
	grpcSrv, healthSrv, inproc, err := buildGRPC(ctx, cfg, st, certs, grpcOptions{
		Logger: log, Access: access, Authenticate: authenticate, Events: recorder,
		InFlight: limits.NewInFlight(cfg.Load.MaxInFlight, cfg.Load.MaxInFlightWrites, service.IsWrite, reg),
	})
	if err != nil {
		return err
	}
	var conn grpc.ClientConnInterface = inproc
	if sm.dialGateway != nil {
		dialed, err := sm.dialGateway(grpcLis.Addr().String())
		if err != nil {
			return err
		}
		defer dialed.Close()
		conn = dialed
	}
	httpSrv, serveHTTP, err := buildHTTP(ctx, cfg, conn, certs, access, gateway.Options{
		Logger:  log,
		Ready:   cachedProbe(readiness(verifier, st), time.Second, time.Now),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	})
	if err != nil {
		return err
	}

	errc := startServing(grpcSrv, grpcLis, serveHTTP, httpLis)
	started = true
	addrs := Addrs{GRPC: grpcLis.Addr().String(), HTTP: httpLis.Addr().String()}
	log.Info("listening", "grpc_addr", addrs.GRPC, "http_addr", addrs.HTTP, "db", redactDB(cfg.DB))
	announceKey(log, env.Stdout, cfg, key, addrs)
	if env.Listening != nil {
		env.Listening(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed, shutting down", "error", runErr)
	}
	healthSrv.Shutdown() // report NOT_SERVING to health checks while draining
	stopBy = time.Now().Add(cfg.ShutdownTimeout)
	shutdown(httpSrv, grpcSrv, stopBy.Add(-2*reserve), log)
	return runErr
}

// newTelemetry is the metrics registry (Go runtime, process, build) and
// the access log that records every request into it.
func newTelemetry(cfg Config, log *slog.Logger) (*prometheus.Registry, *accesslog.Recorder) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	return reg, accesslog.New(accesslog.Options{Logger: log, Registerer: reg, TrustedProxies: cfg.TrustedProxies})
}

// startEvents starts the writer of analytic events and their retention;
// the recorder is nil when the seams say noEvents.
func startEvents(cfg Config, st store.Store, log *slog.Logger, reg prometheus.Registerer, sm seams) (*events.Writer, *events.Recorder, context.CancelFunc) {
	writerOpts := events.DefaultWriterOptions
	writerOpts.Logger, writerOpts.Registerer = log, reg
	if sm.holdEvents {
		writerOpts.Buffer, writerOpts.BatchSize, writerOpts.FlushInterval = 1<<20, 1<<20, time.Hour
	}
	writer := events.NewWriter(st, writerOpts)
	var recorder *events.Recorder
	if !sm.noEvents {
		recorder = events.NewRecorder(service.EventOps, writer)
	}
	retentionCtx, stopRetention := context.WithCancel(context.Background())
	go events.Retention{Store: st, Keep: cfg.EventsRetention, Every: time.Hour, Batch: 500, Logger: log}.Run(retentionCtx)
	return writer, recorder, stopRetention
}

// buildGRPC is the gRPC server over the users service, and the gateway's
// in-process channel to it: opts completed with the configured limits and
// transport bounds, TLS on the port when configured.
func buildGRPC(ctx context.Context, cfg Config, st store.Store, certs *certReloader, opts grpcOptions) (*grpc.Server, *health.Server, *gatewayconn.Channel, error) {
	users, err := service.NewUsers(ctx, st, service.Limits{MaxClaimsBytes: cfg.MaxClaimsBytes, MaxClaimsDepth: cfg.MaxClaimsDepth})
	if err != nil {
		return nil, nil, nil, err
	}
	if opts.CallerRate, err = newCallerRate(cfg.Load); err != nil {
		return nil, nil, nil, err
	}
	opts.Transport = grpcTransport(cfg.GRPC)
	if certs != nil {
		opts.Transport = append(opts.Transport, grpc.Creds(serverCredentials(serverTLS(certs))))
	}
	opts.MaxRecvMsgSize = cfg.GRPCMaxRecv
	opts.Deadline = deadline.UnaryServerInterceptor(cfg.RequestTimeout)
	return newGRPCServer(users, opts)
}

// buildHTTP is the HTTP server of the REST gateway (reaching the users
// service through conn) and the ops endpoints, and how to serve it on a listener (TLS when
// configured).
func buildHTTP(ctx context.Context, cfg Config, conn grpc.ClientConnInterface, certs *certReloader, access *accesslog.Recorder, opts gateway.Options) (*http.Server, func(net.Listener) error, error) {
	opts.MaxBodyBytes = cfg.MaxBodyBytes
	opts.MaxJSONDepth = rules.MaxBodyDepth(cfg.MaxClaimsDepth)
	api, err := gateway.New(ctx, conn, opts)
	if err != nil {
		return nil, nil, err
	}
	// Outermost the request id (every response and log line carries it),
	// then the access log, which must see every answer: the 431 of
	// fitGRPCMetadata too.
	httpSrv := newHTTPServer(requestid.Middleware(access.Middleware(fitGRPCMetadata(api, cfg.GRPC.MaxHeaderBytes))), opts.Logger)
	serveHTTP := httpSrv.Serve
	if certs != nil {
		// ServeTLS offers h2 and http/1.1 by ALPN: HTTP/1.1 clients keep working.
		httpSrv.TLSConfig = serverTLS(certs)
		serveHTTP = func(l net.Listener) error { return httpSrv.ServeTLS(l, "", "") }
	}
	return httpSrv, serveHTTP, nil
}

// startServing serves gRPC and HTTP on their ports; the channel reports
// the first server that fails.
func startServing(grpcSrv *grpc.Server, grpcLis net.Listener, serveHTTP func(net.Listener) error, httpLis net.Listener) <-chan error {
	errc := make(chan error, 2)
	go func() { errc <- serveGRPC(grpcSrv, grpcLis) }()
	go func() {
		if err := serveHTTP(httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	return errc
}

// readiness is ready when tokens can be verified (a JWKS has been fetched)
// and the database can be read and written.
func readiness(v *auth.Verifier, st store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := v.Ready(ctx); err != nil {
			return fmt.Errorf("authentication: %w", err)
		}
		return st.Ping(ctx)
	}
}

// newCallerRate is the per-caller rate limit, or nil when it is off.
func newCallerRate(cfg LoadConfig) (*limits.CallerRate, error) {
	if cfg.RatePerCaller == 0 {
		return nil, nil
	}
	return limits.NewCallerRate(cfg.RatePerCaller, cfg.RateBurst, func(ctx context.Context) string {
		p, _ := auth.FromContext(ctx)
		return p.Subject
	})
}

// closeReserve is the part of the shutdown budget kept back from the
// requests in flight for writing the buffered events, and again from those
// for the final checkpoint: a tenth, at most a second, each.
func closeReserve(timeout time.Duration) time.Duration {
	return min(timeout/10, time.Second)
}

func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if isPostgres(cfg.DB) {
		st, err := postgres.Open(ctx, cfg.DB, postgres.Options{
			MaxConns:         int32(cfg.Postgres.MaxConns),
			StatementTimeout: cfg.Postgres.StatementTimeout,
			ConnectRetry:     cfg.Postgres.ConnectRetry,
		})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL database %s (--db, USERS_DB): %w", redactDB(cfg.DB), err)
		}
		return st, nil
	}
	cacheBytes := cfg.DBCacheBytes
	if cacheBytes == 0 {
		cacheBytes = -1 // the store's word for none
	}
	st, err := sqlite.Open(ctx, cfg.DB, sqlite.Options{QuickCheck: cfg.DBQuickCheck, UserCacheBytes: cacheBytes})
	switch {
	case errors.Is(err, sqlite.ErrInUse):
		return nil, fmt.Errorf("database %s is in use by another process (another usersd serve?); one server at a time serves a SQLite database (several need PostgreSQL): %w", cfg.DB, err)
	case errors.Is(err, sqlite.ErrCorrupt):
		return nil, fmt.Errorf("database %s is damaged, refusing to serve from it (restore it from a backup; --db-quick-check=false skips the check): %w", cfg.DB, err)
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		return nil, fmt.Errorf("open database %s: %w; --db (USERS_DB) must name a file in a directory usersd can write: SQLite keeps its -wal and -shm files beside the database", cfg.DB, err)
	case err != nil:
		return nil, fmt.Errorf("open database %s: %w", cfg.DB, err)
	}
	return st, nil
}

func serveGRPC(srv *grpc.Server, lis net.Listener) error {
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("gRPC server: %w", err)
	}
	return nil
}

// newHTTPServer bounds slow or stalled clients so they cannot hold
// resources others need.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          httpErrorLog(log),
	}
}

// shutdown stops accepting, then waits until deadline for in-flight
// requests: HTTP first (its requests are gRPC calls underneath), then gRPC.
func shutdown(httpSrv *http.Server, grpcSrv *grpc.Server, deadline time.Time, log *slog.Logger) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := httpSrv.Shutdown(ctx); err != nil {
		log.Warn("HTTP shutdown incomplete, closing connections", "error", err)
		httpSrv.Close()
	}
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Until(deadline)):
		log.Warn("gRPC graceful stop timed out, stopping")
		grpcSrv.Stop()
		<-stopped
	}
}
