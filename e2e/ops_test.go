package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	for _, path := range []string{"/healthz", "/readyz"} {
		r := s.do(t, "GET", path, "")
		if r.Status != 200 || r.JSON(t)["status"] != "ok" {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if r := s.do(t, "HEAD", path, ""); r.Status != 200 {
			t.Fatalf("HEAD %s: %d", path, r.Status)
		}
	}

	r := s.do(t, "GET", "/openapi.json", "")
	var doc struct {
		Swagger string                    `json:"swagger"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if r.Status != 200 || json.Unmarshal(r.Body, &doc) != nil || doc.Swagger != "2.0" {
		t.Fatalf("openapi: %d %.200s", r.Status, r.Body)
	}
	for path, method := range map[string]string{"/v1/users": "post", "/v1/users/{id}": "delete"} {
		if doc.Paths[path][method] == nil {
			t.Errorf("openapi lacks %s %s", method, path)
		}
	}
}

// metricValue returns the value of the first sample whose line matches re.
func metricValue(t *testing.T, text string, re *regexp.Regexp) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if re.MatchString(line) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// REST calls must pass the gRPC interceptors: the per-RPC metrics, which
// an interceptor records, count them, under transport="rest".
func TestRESTPassesGRPCInterceptors(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	getOK := regexp.MustCompile(`^grpc_server_handled_total\{grpc_code="OK",grpc_method="GetUser",.*transport="rest"\}`)
	getNotFound := regexp.MustCompile(`^grpc_server_handled_total\{grpc_code="NotFound",grpc_method="GetUser",.*transport="rest"\}`)

	before := metricValue(t, string(s.do(t, "GET", "/metrics", "").Body), getOK)
	for i := 0; i < 3; i++ {
		s.do(t, "GET", "/v1/users/"+id, "")
	}
	s.do(t, "GET", "/v1/users/"+missingID, "")
	text := string(s.do(t, "GET", "/metrics", "").Body)
	if got := metricValue(t, text, getOK) - before; got != 3 {
		t.Fatalf("GetUser OK count rose by %v, want 3", got)
	}
	if got := metricValue(t, text, getNotFound); got != 1 {
		t.Fatalf("GetUser NotFound count %v, want 1", got)
	}
	if !strings.Contains(text, `usersd_store_operation_duration_seconds_count{operation="get_user",outcome="ok"}`) {
		t.Fatal("no store timings in /metrics")
	}
	if strings.Contains(text, id) || strings.Contains(text, missingID) {
		t.Fatal("a user id appears in a metric label")
	}
}

// The server sets its own garbage collector target unless the operator
// set GOGC, which then wins.
func TestGCPercent(t *testing.T) {
	t.Parallel()
	gogc := regexp.MustCompile(`^go_gc_gogc_percent `)
	for _, tc := range []struct {
		env  []string
		want float64
	}{
		{nil, 175},
		{[]string{"GOGC=100"}, 100},
		{[]string{"GOGC=60"}, 60},
	} {
		s := startEnv(t, "", append([]string{"USERS_JWT_SECRET=" + string(testSecret)}, tc.env...))
		if got := metricValue(t, string(s.do(t, "GET", "/metrics", "").Body), gogc); got != tc.want {
			t.Errorf("environment %q: go_gc_gogc_percent %v, want %v", tc.env, got, tc.want)
		}
	}
}
