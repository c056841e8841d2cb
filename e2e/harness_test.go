// Package e2e drives the real usersd binary over loopback: REST with
// net/http, gRPC with the generated client.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// binary is the usersd binary built once for the whole run.
var binary string

// testSecret is the HS256 secret servers started by start() use, and
// adminToken an admin token signed with it, sent by default.
var (
	testSecret = []byte("e2e-test-secret-0123456789abcdef-0123456789")
	adminToken string
)

// tokenFor signs a token with the test secret.
func tokenFor(t testing.TB, spec auth.TokenSpec) string {
	t.Helper()
	if spec.TTL == 0 {
		spec.TTL = time.Hour
	}
	tok, err := auth.IssueHS256(testSecret, spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// bearer is gRPC per-call credentials carrying a bearer token.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

func TestMain(m *testing.M) {
	flag.Parse() // testing.Short reads the flags, which m.Run would parse later
	if testing.Short() {
		fmt.Println("e2e: skipped under -short (these tests build and start the real server)")
		os.Exit(0)
	}
	if waitScaleErr != nil {
		fmt.Fprintln(os.Stderr, waitScaleErr)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "usersd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "usersd")
	adminToken, err = auth.IssueHS256(testSecret, auth.TokenSpec{Subject: "e2e-admin", Roles: []string{auth.RoleAdmin}, TTL: 24 * time.Hour}, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", binary}
	if os.Getenv("USERSD_E2E_RACE") != "" {
		args = append(args, "-race") // the server under test runs with the race detector
	}
	build := exec.Command("go", append(args, "../cmd/usersd")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building usersd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running usersd process.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	DB       string
	GRPCAddr string
	HTTPAddr string
	logs     *lockedBuffer
	stdout   *lockedBuffer
	exited   chan struct{}
	exitErr  error
	conn     *grpc.ClientConn
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs usersd on free loopback ports with the database of dir (a
// new temp dir when ""; see databaseIn), verifying tokens with testSecret,
// and stops it gracefully when the test ends.
func start(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	return startEnv(t, dir, []string{"USERS_JWT_SECRET=" + string(testSecret)}, args...)
}

// startEnv is start with the given extra environment instead of the test
// secret.
func startEnv(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return launch(t, databaseIn(t, dir), env, args...)
}

// startDB runs usersd on the database db (a SQLite path or a PostgreSQL
// URL), verifying tokens with testSecret; several servers may share one
// PostgreSQL database.
func startDB(t *testing.T, db string, args ...string) *server {
	t.Helper()
	return launch(t, db, []string{"USERS_JWT_SECRET=" + string(testSecret)}, args...)
}

// launch runs usersd on db with the given extra environment, and stops it
// gracefully when the test ends.
func launch(t *testing.T, db string, env []string, args ...string) *server {
	t.Helper()
	s := &server{t: t, DB: db, logs: &lockedBuffer{}, stdout: &lockedBuffer{}, exited: make(chan struct{})}
	argv := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", s.DB}, args...)
	s.cmd = exec.Command(binary, argv...)
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	s.cmd.Stdout = s.stdout
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go s.readLogs(stderr, addrs)
	go func() { s.exitErr = s.cmd.Wait(); close(s.exited) }()
	select {
	case a := <-addrs:
		s.GRPCAddr, s.HTTPAddr = a[0], a[1]
	case <-s.exited:
		t.Fatalf("usersd exited before listening: %v\n%s", s.exitErr, s.logs)
	case <-time.After(wait(30 * time.Second)):
		s.cmd.Process.Kill()
		t.Fatalf("usersd did not start listening\n%s", s.logs)
	}
	t.Cleanup(func() {
		if s.conn != nil {
			s.conn.Close()
		}
		select {
		case <-s.exited:
			return
		default:
		}
		if err := s.stop(); err != nil {
			t.Errorf("graceful stop: %v\n%s", err, s.logs)
		}
	})
	return s
}

// readLogs copies the JSON log lines and reports the bound addresses.
func (s *server) readLogs(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		s.logs.Write(append(append([]byte(nil), line...), '\n'))
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

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	limit := wait(30 * time.Second)
	select {
	case <-s.exited:
		return s.exitErr
	case <-time.After(limit):
		s.cmd.Process.Kill()
		return fmt.Errorf("no exit %v after SIGTERM", limit)
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// grpc returns a client of the server's gRPC port that sends adminToken.
func (s *server) grpc() usersv1.UserServiceClient {
	if s.conn == nil {
		conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer(adminToken)))
		if err != nil {
			s.t.Fatal(err)
		}
		s.conn = conn
	}
	return usersv1.NewUserServiceClient(s.conn)
}

// response is a REST response, body read.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// do sends a REST request with adminToken; body is sent as
// application/json. Headers given replace these defaults, and a header
// given as "" is not sent ("Authorization", "" sends no token).
func (s *server) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + adminToken}}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			h.Del(headers[i])
			continue
		}
		h.Set(headers[i], headers[i+1])
	}
	return s.send(t, method, path, body, h)
}

// send sends a REST request with exactly the headers given.
func (s *server) send(t *testing.T, method, path, body string, h http.Header) response {
	t.Helper()
	var rdr io.Reader
	if body != "" {
		rdr = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+s.HTTPAddr+path, rdr)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// errorBody is the contract's error body.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Value    string `json:"value"`
		Msg      string `json:"msg"`
		Param    string `json:"param"`
		Location string `json:"location"`
	} `json:"details"`
}

// wantError asserts an error response: status, JSON content type, code
// word, and (when given) the exact set of param@location details.
func wantError(t *testing.T, r response, status int, code string, details ...string) errorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: %v", r.Body, err)
	}
	if e.Code != code || e.Message == "" {
		t.Fatalf("code %q message %q, want code %q", e.Code, e.Message, code)
	}
	if details != nil {
		var got []string
		for _, d := range e.Details {
			if d.Msg == "" {
				t.Fatalf("detail without msg: %s", r.Body)
			}
			got = append(got, d.Param+"@"+d.Location)
		}
		if strings.Join(slices.Sorted(slices.Values(got)), " ") != strings.Join(slices.Sorted(slices.Values(details)), " ") {
			t.Fatalf("details %v, want %v; body %s", got, details, r.Body)
		}
	}
	return e
}

// metricSum adds up the samples of the metric whose labels contain every
// filter (all label sets when none).
func metricSum(t *testing.T, text, name string, labelFilters ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if !containsAll(line, labelFilters) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// serveMustFail runs `usersd serve` and expects it to exit non-zero by
// itself, saying why; it returns the output.
func serveMustFail(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait(30*time.Second))
	defer cancel()
	dir := t.TempDir()
	argv := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", filepath.Join(dir, "users.db")}, args...)
	cmd := exec.CommandContext(ctx, binary, argv...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	output := &watchBuffer{want: `"msg":"listening"`, seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-output.seen:
		cancel()
		<-exited
		t.Fatalf("usersd serve %q with %q started listening:\n%s", args, env, output)
	case <-ctx.Done():
		<-exited
		t.Fatalf("usersd serve %q with %q did not exit by itself:\n%s", args, env, output)
	}
	out := output.String()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("usersd serve %q with %q: %v, want a non-zero exit\n%s", args, env, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration left a generated jwt-secret: %v", err)
	}
	return string(out)
}

// watchBuffer collects output and closes seen once it contains want.
type watchBuffer struct {
	lockedBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	if strings.Contains(w.lockedBuffer.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}
