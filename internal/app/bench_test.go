package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// Throughput of GetUser and UpdateUser over gRPC and over REST, with the
// gateway calling the service in process (what usersd does) or the gRPC
// port over loopback TCP (the baseline). Run:
//
//	go test ./internal/app -run '^$' -bench . -benchtime 3s
//
// Compare the ns/op of the sub-benchmarks of one run: the machine is
// noisy, the ratios are what matter.

func dialLoopback(tcpAddr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(tcpAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

type benchServer struct {
	addrs Addrs
	conn  *grpc.ClientConn
	users usersv1.UserServiceClient
	http  *http.Client
	token string
}

// withoutVerification is the baseline for the cost of authentication: the
// chain is unchanged, but every caller is admin without a token check.
func withoutVerification(ctx context.Context) (context.Context, error) {
	return auth.NewContext(ctx, auth.Principal{Subject: "bench", Roles: []string{auth.RoleAdmin}}), nil
}

// startServer runs the whole server in process on loopback ports until the
// test or benchmark ends, and returns clients with an admin token.
func startServer(tb testing.TB, sm seams) *benchServer {
	tb.Helper()
	cfg, err := ParseConfig([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", tb.TempDir() + "/users.db"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan Addrs, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // as cmd/usersd logs
	go func() {
		done <- run(ctx, cfg, Env{Log: log, Listening: func(a Addrs) { listening <- a }}, sm)
	}()
	var s benchServer
	select {
	case s.addrs = <-listening:
	case err := <-done:
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	key, err := findSecret(cfg.Auth, cfg.DB)
	if err != nil {
		tb.Fatal(err)
	}
	s.token, err = auth.IssueHS256(key.key, auth.TokenSpec{Subject: "bench", Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	s.conn, err = grpc.NewClient(s.addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerToken(s.token)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.conn.Close() })
	s.users = usersv1.NewUserServiceClient(s.conn)
	s.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	return &s
}

// seed creates n users with typical claims and returns their ids.
func (s *benchServer) seed(tb testing.TB, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		claims, _ := structpb.NewStruct(map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "name": "Benchmark User", "tier": 3})
		u, err := s.users.CreateUser(context.Background(), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims}})
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = u.GetUser().GetId()
	}
	return ids
}

func (s *benchServer) rest(tb testing.TB, method, path string, body []byte) {
	req, _ := http.NewRequest(method, "http://"+s.addrs.HTTP+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req)
	if err != nil {
		tb.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// benchClients × GOMAXPROCS concurrent callers keep the server busy rather
// than measuring the latency of a couple of sequential callers.
const benchClients = 8

// reportBackpressure reports how often requests waited for room in the
// event buffer: it is sized so that this load never fills it (0).
func (s *benchServer) reportBackpressure(b *testing.B) {
	b.StopTimer()
	resp, err := s.http.Get("http://" + s.addrs.HTTP + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usersd_events_backpressure_waits_total "); ok {
			waits, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(waits, "event-waits")
		}
	}
}

type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// transport is one way of calling the service, with the server seams it
// needs: the configured server is the default, variants remove one part.
type transport struct {
	name string
	rest bool
	sm   seams
}

var transports = []transport{
	{"grpc", false, seams{}},
	{"grpc-noverify", false, seams{authenticate: withoutVerification}},
	{"grpc-noevents", false, seams{noEvents: true}},
	{"rest-inprocess", true, seams{}},
	{"rest-inprocess-noverify", true, seams{authenticate: withoutVerification}},
	{"rest-inprocess-noevents", true, seams{noEvents: true}},
	{"rest-loopback", true, seams{dialGateway: dialLoopback}},
}

// benchEach runs call from benchClients × GOMAXPROCS goroutines against
// a fresh server per transport, seeded with 100 users; call gets a
// running number and the id of the user to use.
func benchEach(b *testing.B, call func(b *testing.B, s *benchServer, tr transport, i int64, id string)) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			s := startServer(b, tr.sm)
			ids := s.seed(b, 100)
			var n atomic.Int64
			b.SetParallelism(benchClients)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					call(b, s, tr, i, ids[int(i)%len(ids)])
				}
			})
			s.reportBackpressure(b)
		})
	}
}

func BenchmarkGetUser(b *testing.B) {
	benchEach(b, func(b *testing.B, s *benchServer, tr transport, _ int64, id string) {
		s.getUser(b, tr.rest, id)
	})
}

// BenchmarkListUsers reads the first page of 100 users, each with the
// claims and provider link of a typical account (as ../bench seeds them).
func BenchmarkListUsers(b *testing.B) {
	for _, tr := range []struct {
		name string
		rest bool
	}{{"grpc", false}, {"rest-inprocess", true}} {
		b.Run(tr.name, func(b *testing.B) {
			s := startServer(b, seams{})
			s.seedAccounts(b, listPage+1)
			b.SetParallelism(benchClients)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.listUsers(b, tr.rest)
				}
			})
		})
	}
}

func BenchmarkUpdateUser(b *testing.B) {
	benchEach(b, func(b *testing.B, s *benchServer, tr transport, i int64, id string) {
		s.updateUser(b, tr.rest, i, id)
	})
}

// listPage is the page size of listUsers.
const listPage = 100

// seedAccounts creates n users with typical account claims and a provider
// link each.
func (s *benchServer) seedAccounts(tb testing.TB, n int) {
	tb.Helper()
	for i := range n {
		claims, err := structpb.NewStruct(map[string]any{
			"givenName": "Patrick John", "familyName": "Smith", "dob": "1990-06-01",
			"email": fmt.Sprintf("user-%d@example.com", i), "externalUserId": fmt.Sprintf("ext-%d", i),
		})
		if err != nil {
			tb.Fatal(err)
		}
		_, err = s.users.CreateUser(context.Background(), &usersv1.CreateUserRequest{User: &usersv1.User{
			Claims: claims,
			AuthenticationProvider: &usersv1.AuthenticationProvider{
				ProviderId: "41458e5a-9092-40b7-9a26-d4eb43c5792f", Url: "https://idp.example.com",
				SubjectId: fmt.Sprintf("idp-oauth2|%d", i),
			},
		}})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// listUsers reads the first page of listPage users over REST or gRPC.
func (s *benchServer) listUsers(tb testing.TB, rest bool) {
	if rest {
		s.rest(tb, "GET", "/v1/users?limit="+strconv.Itoa(listPage), nil)
	} else if _, err := s.users.ListUsers(context.Background(), &usersv1.ListUsersRequest{Limit: proto.Int32(listPage)}); err != nil {
		tb.Error(err)
	}
}

// getUser reads the user id over REST or gRPC.
func (s *benchServer) getUser(tb testing.TB, rest bool, id string) {
	if rest {
		s.rest(tb, "GET", "/v1/users/"+id, nil)
	} else if _, err := s.users.GetUser(context.Background(), &usersv1.GetUserRequest{Id: id}); err != nil {
		tb.Error(err)
	}
}

// updateUser replaces the claims of the user id with ones numbered i.
func (s *benchServer) updateUser(tb testing.TB, rest bool, i int64, id string) {
	if rest {
		s.rest(tb, "PUT", "/v1/users/"+id, []byte(`{"claims":{"email":"u@example.com","n":`+strconv.FormatInt(i, 10)+`}}`))
		return
	}
	claims, _ := structpb.NewStruct(map[string]any{"email": "u@example.com", "n": float64(i)})
	_, err := s.users.UpdateUser(context.Background(), &usersv1.UpdateUserRequest{
		Id: id, User: &usersv1.User{Claims: claims}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims"}},
	})
	if err != nil {
		tb.Error(err)
	}
}
