package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// usersd runs the binary with args in dir (the test's own temp dir when
// ""), with only PATH, HOME and env in its environment.
func usersd(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("usersd %q: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := usersd(t, "", nil, "version")
	line := strings.TrimSuffix(out, "\n")
	if code != 0 || errOut != "" || !regexp.MustCompile(`^usersd \S+( \S+)? go1\.\S+$`).MatchString(line) {
		t.Fatalf("usersd version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if again, _, code := usersd(t, "", nil, "--version"); code != 0 || again != out {
		t.Fatalf("usersd --version: exit %d, %q; usersd version said %q", code, again, out)
	}

	s := start(t, "")
	metrics := string(s.do(t, "GET", "/metrics", "").Body)
	gauge := regexp.MustCompile(`(?m)^usersd_build_info\{goversion="go1\.[^"]+",revision="[^"]*",version="([^"]+)"\} 1$`)
	m := gauge.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no usersd_build_info gauge in /metrics:\n%s", grepLines(metrics, "build_info"))
	}
	if version := strings.Fields(line)[1]; m[1] != version {
		t.Errorf("usersd_build_info says version %q, usersd version %q", m[1], version)
	}
}

// grepLines returns the lines of text containing s.
func grepLines(text, s string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// Help asked for goes to stdout with exit 0; serve's lists the USERS_*
// variables.
func TestHelpOnStdout(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"serve", "-h"}, {"serve", "--help"}, {"help", "serve"}, {"token", "-h"}, {"token", "--help"}, {"backup", "-h"}} {
		out, errOut, code := usersd(t, "", nil, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: usersd") {
			t.Errorf("usersd %q: exit %d, stdout %.80q, stderr %q; want usage on stdout, exit 0", args, code, out, errOut)
		}
		if args[len(args)-1] == "serve" || args[0] == "serve" {
			for _, env := range []string{"USERS_GRPC_ADDR", "USERS_DB", "USERS_JWT_SECRET"} {
				if !strings.Contains(out, env) {
					t.Errorf("usersd %q does not mention %s", args, env)
				}
			}
		}
	}
}

// A usage error is printed once, on stderr, with exit 2; a bad value is
// one line naming it and what is expected.
func TestUsageErrorsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"serve", "--nope"}, "usersd serve: flag provided but not defined: -nope (usersd serve -h lists the flags)\n"},
		{[]string{"USERS_MAX_BODY_BYTES=abc"}, []string{"serve"}, "usersd serve: USERS_MAX_BODY_BYTES=\"abc\": not a whole number of bytes\n"},
		{nil, []string{"serve", "--grpc-keepalive-min-time", "10"}, "usersd serve: --grpc-keepalive-min-time=\"10\": not a duration such as 30s, 5m or 1h30m\n"},
		{nil, []string{"token", "--role", "root"}, "usersd token: --role=\"root\": not a role: want one of admin, issuer, auditor\n"},
	} {
		out, errOut, code := usersd(t, "", tc.env, tc.args...)
		if code != 2 || out != "" || errOut != tc.want {
			t.Errorf("usersd %q with %q: exit %d, stdout %q, stderr %q; want exit 2 and stderr %q", tc.args, tc.env, code, out, errOut, tc.want)
		}
	}
	if out, errOut, code := usersd(t, "", nil); code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: usersd") {
		t.Errorf("usersd alone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// serveFails runs `usersd serve` with args in dir, expects it to exit 1
// by itself before listening, and returns its stderr.
func serveFails(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait(30*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil || cmd.ProcessState.ExitCode() != 1 || strings.Contains(stderr.String(), `"msg":"listening"`) {
		t.Fatalf("usersd serve %q with %q: %v, want exit 1 before listening\nstdout %s\nstderr %s", args, env, err, stdout.String(), stderr.String())
	}
	return stderr.String()
}

// listDir lists the paths under dir, relative to it.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if path != dir {
			rel, _ := filepath.Rel(dir, path)
			paths = append(paths, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// A port in use is reported with the setting to change, and the failed
// start leaves nothing on disk: no key is configured, so a start that went
// further would create ./data, the database and a secret.
func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		env, args []string
		want      []string
	}{
		{nil, []string{"--grpc-addr", busy.Addr().String(), "--http-addr", "127.0.0.1:0"}, []string{"--grpc-addr", "USERS_GRPC_ADDR"}},
		{[]string{"USERS_GRPC_ADDR=127.0.0.1:0", "USERS_HTTP_ADDR=" + busy.Addr().String()}, nil, []string{"--http-addr", "USERS_HTTP_ADDR"}},
	} {
		dir := t.TempDir()
		stderr := serveFails(t, dir, tc.env, tc.args...)
		for _, w := range append(tc.want, busy.Addr().String(), "address already in use") {
			if !strings.Contains(stderr, w) {
				t.Errorf("port in use: %q does not mention %s", stderr, w)
			}
		}
		if left := listDir(t, dir); len(left) != 0 {
			t.Errorf("a start that failed on a port in use left %v", left)
		}
	}
}

// unwritableDir returns an empty directory nobody can write to: a
// read-only tmpfs when running as root (root ignores file modes), else a
// directory of mode 0500.
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=64k"); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// An unwritable --db directory is reported as a --db problem (it was
// reported as a JWT secret error when the secret was created first), and
// nothing is left behind.
func TestStartUnwritableDB(t *testing.T) {
	t.Parallel()
	ro := unwritableDir(t)
	for _, db := range []string{filepath.Join(ro, "users.db"), filepath.Join(ro, "data", "users.db")} {
		stderr := serveFails(t, t.TempDir(), nil, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", db)
		if !strings.Contains(stderr, "--db") || !strings.Contains(stderr, "USERS_DB") || !strings.Contains(stderr, db) ||
			strings.Contains(stderr, "secret") {
			t.Errorf("--db %s: %q, want an error about --db", db, stderr)
		}
		if strings.Count(stderr, "\n") != 1 {
			t.Errorf("--db %s: want one line:\n%s", db, stderr)
		}
	}
	if left := listDir(t, ro); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}
