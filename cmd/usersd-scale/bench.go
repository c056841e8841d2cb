package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/app"
	"github.com/usersd/usersd/internal/auth"
)

// clientCounts are the concurrency levels every scenario runs at.
var clientCounts = []int{1, 32}

const pageSize = 100

// scenario is one kind of request; call makes one, its target drawn from
// r so that no single row stays hot in a cache.
type scenario struct {
	name string
	call func(ctx context.Context, c usersv1.UserServiceClient, r *mrand.Rand) error
}

type result struct {
	scenario string
	clients  int
	requests int
	errors   int
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
}

// bench starts usersd on the seeded database, runs every scenario at
// every client count, and prints a markdown table with the server's peak
// RSS and the database size.
func bench(ctx context.Context, c config, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "usersd-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	binary := c.usersd
	if binary == "" {
		binary = filepath.Join(tmp, "usersd")
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/usersd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/usersd (run from the module root, or give --usersd): %w", err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret) // never fails; it crashes the program instead
	srv, err := startServer(ctx, binary, c.db, hex.EncodeToString(secret))
	if err != nil {
		return err
	}
	defer srv.stop()
	token, err := auth.IssueHS256([]byte(hex.EncodeToString(secret)), auth.TokenSpec{Subject: "usersd-scale", Roles: []string{"admin"}, TTL: 24 * time.Hour}, time.Now())
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := usersv1.NewUserServiceClient(conn)
	if err := checkSeeded(ctx, client, c.users); err != nil {
		return err
	}
	scenarios, err := listScenarios(ctx, client, c.users)
	if err != nil {
		return err
	}
	scenarios = append(scenarios, searchScenarios(c.users)...)

	var results []result
	for _, sc := range scenarios {
		for _, n := range clientCounts {
			res := measure(ctx, client, sc, n, c.duration)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "%s at %d clients: %.0f req/s, p50 %s, p99 %s\n", sc.name, n, float64(res.requests)/res.elapsed.Seconds(), res.p50, res.p99)
			results = append(results, res)
		}
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return err
	}
	size, err := databaseSize(ctx, c.db)
	if err != nil {
		return err
	}
	backend := "SQLite"
	if isPostgres(c.db) {
		backend = "PostgreSQL"
	}
	report(out, backend, c, results, rss, size)
	return nil
}

// measure runs sc with n concurrent clients for d and computes the
// latency percentiles and the rate. Calls started before the end finish
// and count: none is cut off by the end of the run.
func measure(ctx context.Context, client usersv1.UserServiceClient, sc scenario, n int, d time.Duration) result {
	lat := make([][]time.Duration, n)
	errs := make([]int, n)
	var firstErr error
	var once sync.Once
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil && time.Now().Before(end) {
				t := time.Now()
				if err := sc.call(ctx, client, r); err != nil {
					errs[w]++
					once.Do(func() { firstErr = err })
					continue
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := result{scenario: sc.name, clients: n, requests: len(all), elapsed: time.Since(start), firstErr: firstErr}
	for _, e := range errs {
		res.errors += e
	}
	if len(all) > 0 {
		res.p50, res.p99 = percentile(all, 0.50), percentile(all, 0.99)
	}
	return res
}

// percentile of sorted latencies, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[max(0, int(math.Ceil(p*float64(len(sorted))))-1)]
}

// checkSeeded makes sure the database holds the seeded users the
// scenarios address by number: the last one, and not one more.
func checkSeeded(ctx context.Context, c usersv1.UserServiceClient, n int) error {
	if _, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: userID(n - 1)}); err != nil {
		return fmt.Errorf("user %d of the seeded data is missing (seed with the same --users): %w", n-1, err)
	}
	switch _, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: userID(n)}); {
	case err == nil:
		return fmt.Errorf("the database holds more than --users %d seeded users", n)
	case status.Code(err) != codes.NotFound:
		return fmt.Errorf("looking for user %d, past the seeded ones: %w", n, err)
	}
	return nil
}

// listScenarios are GetUser and the first and a deep page of ListUsers:
// page 10,000 (of 100 users), or the last full page when there are fewer
// users. Its cursor comes from paging there in pages of 1,000.
func listScenarios(ctx context.Context, c usersv1.UserServiceClient, n int) ([]scenario, error) {
	deep := max(1, min(10_000, n/pageSize))
	var cursor string
	for skip := (deep - 1) * pageSize; skip > 0; {
		limit := int32(min(1000, skip))
		resp, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &limit, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("page to page %d: %w", deep, err)
		}
		cursor = resp.GetNextCursor()
		skip -= len(resp.GetData())
		if cursor == "" {
			return nil, fmt.Errorf("page to page %d: the listing ended early", deep)
		}
	}
	limit := int32(pageSize)
	page := func(cursor string) func(context.Context, usersv1.UserServiceClient, *mrand.Rand) error {
		return func(ctx context.Context, c usersv1.UserServiceClient, _ *mrand.Rand) error {
			resp, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &limit, Cursor: cursor})
			if err == nil && len(resp.GetData()) != pageSize {
				err = fmt.Errorf("page of %d users, want %d", len(resp.GetData()), pageSize)
			}
			return err
		}
	}
	return []scenario{
		{"GetUser", func(ctx context.Context, c usersv1.UserServiceClient, r *mrand.Rand) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: userID(r.IntN(n))})
			return err
		}},
		{"ListUsers page 1", page("")},
		{fmt.Sprintf("ListUsers page %d", deep), page(cursor)},
	}, nil
}

func report(out io.Writer, backend string, c config, results []result, rss, size int64) {
	fmt.Fprintf(out, "\n### %s, %d users, %s per run\n\n", backend, c.users, c.duration)
	fmt.Fprintln(out, "| scenario | clients | requests | errors | req/s | p50 | p99 |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(out, "| %s | %d | %d | %d | %.0f | %s | %s |\n", r.scenario, r.clients, r.requests, r.errors,
			float64(r.requests)/r.elapsed.Seconds(), ms(r.p50), ms(r.p99))
	}
	fmt.Fprintf(out, "\ndatabase size on disk: %s; usersd peak RSS (VmHWM): %s\n", mib(size), mib(rss))
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s at %d clients: %d errors, the first: %v\n", r.scenario, r.clients, r.errors, r.firstErr)
		}
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// bearer is gRPC per-call credentials carrying a bearer token.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// server is the usersd process under measurement.
type server struct {
	cmd      *exec.Cmd
	grpcAddr string
	exited   chan struct{}
	tail     *tail
}

// startServer runs usersd serve on db with the secret on loopback ports
// the system picks, reads the ports from its "listening" log line and
// waits until /readyz answers 200.
func startServer(ctx context.Context, binary, db, secret string) (*server, error) {
	cmd := exec.Command(binary, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", db,
		"--db-quick-check=false") // it reads the whole file: minutes at a million users
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), app.SecretEnv + "=" + secret}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start usersd: %w", err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), tail: &tail{}}
	addrs := make(chan [2]string, 1)
	go s.readLogs(stderr, addrs)
	go func() { cmd.Wait(); close(s.exited) }()
	var httpAddr string
	select {
	case a := <-addrs:
		s.grpcAddr, httpAddr = a[0], a[1]
	case <-s.exited:
		return nil, fmt.Errorf("usersd exited before listening:\n%s", s.tail)
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("usersd did not listen within 2 minutes:\n%s", s.tail)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("usersd not ready within a minute (%v):\n%s", err, s.tail)
		}
		time.Sleep(50 * time.Millisecond) // polling a process of our own: nothing to wait on instead
	}
}

// readLogs reports the listening addresses and keeps the last lines for
// error messages; the rest (an access log line per request) is dropped.
func (s *server) readLogs(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		s.tail.add(string(line))
		var rec struct {
			Msg      string `json:"msg"`
			GRPCAddr string `json:"grpc_addr"`
			HTTPAddr string `json:"http_addr"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
			addrs <- [2]string{rec.GRPCAddr, rec.HTTPAddr}
		}
	}
}

// peakRSS is the server's VmHWM, its resident set's high-water mark.
func (s *server) peakRSS() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/PID/status")
}

// stop asks usersd to shut down gracefully, and kills it after a minute.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// tail keeps the last lines of the server's log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 20 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
