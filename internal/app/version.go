package app

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// build is what the binary knows about how it was built.
type build struct {
	module    string // module version: a release (go install …@v1.2.3) or the pseudo-version go build stamps from VCS; "" when unknown
	revision  string // VCS commit, "" when unknown
	time      string // VCS commit time (RFC 3339)
	modified  bool   // built from a working tree with uncommitted changes
	goVersion string
}

// buildFrom reads a build's description; bi may be nil.
func buildFrom(bi *debug.BuildInfo) build {
	if bi == nil {
		return build{goVersion: runtime.Version()}
	}
	b := build{goVersion: bi.GoVersion}
	if v := bi.Main.Version; v != "(devel)" {
		b.module = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// version names the build in one word: the module version, else the
// short VCS revision (+dirty when modified), else "(devel)".
func (b build) version() string {
	switch {
	case b.module != "":
		return b.module
	case b.revision != "":
		v := b.revision[:min(len(b.revision), 12)] // as long as in a pseudo-version
		if b.modified {
			v += "+dirty"
		}
		return v
	}
	return "(devel)"
}

// String is what `usersd version` prints: the version, the commit time
// when the version is a bare revision, and the Go version.
func (b build) String() string {
	parts := []string{"usersd", b.version()}
	if b.module == "" && b.time != "" {
		parts = append(parts, b.time)
	}
	return strings.Join(append(parts, b.goVersion), " ")
}

func currentBuild() build {
	bi, _ := debug.ReadBuildInfo() // nil when the binary has none
	return buildFrom(bi)
}

// Version is the line `usersd version` prints, e.g.
// "usersd v1.2.3 go1.26.8".
func Version() string { return currentBuild().String() }

// registerBuildInfo adds the usersd_build_info gauge to reg: always 1,
// its labels say which build is running (as Prometheus's own build_info).
func registerBuildInfo(reg prometheus.Registerer) {
	b := currentBuild()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "usersd_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": b.version(), "revision": b.revision, "goversion": b.goVersion},
	}, func() float64 { return 1 }))
}
