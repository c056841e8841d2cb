package app

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBuildVersion(t *testing.T) {
	const rev = "02c789fabcde0123456789abcdef0123456789ab"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "-compiler", Value: "gc"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-11-30T00:12:00Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	for name, tc := range map[string]struct {
		bi            *debug.BuildInfo
		version, line string
	}{
		"case=release (go install @v1.2.3)": {
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/usersd/usersd", Version: "v1.2.3"}},
			"v1.2.3", "usersd v1.2.3 go1.26.8"},
		"case=pseudo-version stamped by go build": {
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261130001200-02c789fabcde+dirty"}, Settings: vcs("true")},
			"v0.0.0-20261130001200-02c789fabcde+dirty", "usersd v0.0.0-20261130001200-02c789fabcde+dirty go1.26.8"},
		"case=revision, clean": {
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			"02c789fabcde", "usersd 02c789fabcde 2026-11-30T00:12:00Z go1.26.8"},
		"case=revision, modified": {
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")},
			"02c789fabcde+dirty", "usersd 02c789fabcde+dirty 2026-11-30T00:12:00Z go1.26.8"},
		"case=nothing known (go run, -buildvcs=false)": {
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"(devel)", "usersd (devel) go1.26.8"},
		"case=no build info": {nil, "(devel)", "usersd (devel) " + runtime.Version()},
	} {
		t.Run(name, func(t *testing.T) {
			b := buildFrom(tc.bi)
			if got := b.version(); got != tc.version {
				t.Errorf("version %q, want %q", got, tc.version)
			}
			if got := b.String(); got != tc.line {
				t.Errorf("line %q, want %q", got, tc.line)
			}
		})
	}
}

func TestBuildInfoGauge(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	registerBuildInfo(reg)
	b := currentBuild()
	want := `# HELP usersd_build_info Always 1; the labels name the running build.
# TYPE usersd_build_info gauge
usersd_build_info{goversion="` + b.goVersion + `",revision="` + b.revision + `",version="` + b.version() + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "usersd_build_info"); err != nil {
		t.Fatal(err)
	}
}
