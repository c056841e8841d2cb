package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
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
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"serve", "-h"}, {"serve", "--help"}, {"help", "serve"}, {"token", "-h"}, {"token", "--help"}} {
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
