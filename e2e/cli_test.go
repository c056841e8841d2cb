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
