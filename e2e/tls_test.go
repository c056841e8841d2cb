package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/testcert"
)

// TLS on both listeners (--tls-cert-file, --tls-key-file) with a CA made
// for the test, and the certificate's reload on change and on SIGHUP.

// tlsServer is a usersd serving TLS with certificates of its own CA.
type tlsServer struct {
	*server
	ca        *testcert.CA
	cert, key string
}

// tlsStamp is the modification time the certificate files start with.
var tlsStamp = time.Now().Add(-time.Hour).Truncate(time.Second)

func startTLS(t *testing.T) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	ts := &tlsServer{ca: testcert.NewCA(t), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	ts.write(t, 1, tlsStamp)
	ts.server = start(t, dir, "--tls-cert-file", ts.cert, "--tls-key-file", ts.key)
	return ts
}

// write replaces the certificate files with a server certificate of the
// given serial (sizes fixed, modification time mtime).
func (ts *tlsServer) write(t *testing.T, serial int64, mtime time.Time) {
	t.Helper()
	cert, key := ts.ca.Server(t, serial)
	testcert.Write(t, ts.cert, ts.key, cert, key, mtime)
}

// writeMismatched writes a certificate with a key that is not its own.
func (ts *tlsServer) writeMismatched(t *testing.T, serial int64, mtime time.Time) {
	t.Helper()
	cert, _ := ts.ca.Server(t, serial)
	_, key := ts.ca.Server(t, serial)
	testcert.Write(t, ts.cert, ts.key, cert, key, mtime)
}

func (ts *tlsServer) clientTLS() *tls.Config { return &tls.Config{RootCAs: ts.ca.Pool()} }

// grpcTLS is the generated client over TLS trusting the CA, as grpcurl
// -cacert is, sending the admin token.
func (ts *tlsServer) grpcTLS(t *testing.T) usersv1.UserServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(ts.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(ts.clientTLS())),
		grpc.WithPerRPCCredentials(bearer(adminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return usersv1.NewUserServiceClient(conn)
}

// https sends a REST request with the admin token over HTTPS trusting the
// CA, with HTTP/2 when h2 is set (else HTTP/1.1), and checks the protocol
// the answer came in.
func (ts *tlsServer) https(t *testing.T, h2 bool, method, path, body string) response {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: ts.clientTLS(), ForceAttemptHTTP2: h2}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, "https://"+ts.HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr, Timeout: wait(30 * time.Second)}).Do(req)
	if err != nil {
		t.Fatalf("%s %s over HTTPS: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; resp.Proto != want {
		t.Fatalf("%s %s answered in %s, want %s", method, path, resp.Proto, want)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// presented is the serial number of the certificate a new handshake with
// addr gets (verified against the CA, for 127.0.0.1).
func (ts *tlsServer) presented(t *testing.T, addr string) int64 {
	t.Helper()
	cfg := ts.clientTLS()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// wantPresented asserts the certificate both listeners present now.
func (ts *tlsServer) wantPresented(t *testing.T, serial int64, when string) {
	t.Helper()
	for _, addr := range []string{ts.GRPCAddr, ts.HTTPAddr} {
		if got := ts.presented(t, addr); got != serial {
			t.Fatalf("%s: %s presents serial %d, want %d\n%s", when, addr, got, serial, ts.logs)
		}
	}
}

func TestTLSBothTransports(t *testing.T) {
	t.Parallel()
	ts := startTLS(t)

	t.Run("case=gRPC with the CA", func(t *testing.T) {
		c := ts.grpcTLS(t)
		var p peer.Peer
		created, err := c.CreateUser(context.Background(), &usersv1.CreateUserRequest{User: &usersv1.User{}}, grpc.Peer(&p))
		if err != nil {
			t.Fatal(err)
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || info.State.NegotiatedProtocol != "h2" || info.State.Version < tls.VersionTLS12 {
			t.Fatalf("connection %#v, want TLS 1.2+ with ALPN h2", p.AuthInfo)
		}
		if _, err := c.GetUser(context.Background(), &usersv1.GetUserRequest{Id: created.GetUser().GetId()}); err != nil {
			t.Fatal(err)
		}
	})

	// REST calls the service in process: TLS is the HTTP listener's alone.
	t.Run("case=HTTPS, HTTP/1.1 and HTTP/2", func(t *testing.T) {
		for _, h2 := range []bool{false, true} {
			r := ts.https(t, h2, "POST", "/v1/users", `{"claims":{"tls":true}}`)
			if r.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			if r = ts.https(t, h2, "GET", r.Header.Get("Location"), ""); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"tls":true`) {
				t.Fatalf("get: %d %s", r.Status, r.Body)
			}
		}
	})

	t.Run("case=plaintext gRPC fails", func(t *testing.T) {
		conn, err := grpc.NewClient(ts.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer(adminToken)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait(10*time.Second))
		defer cancel()
		_, err = usersv1.NewUserServiceClient(conn).GetUser(ctx, &usersv1.GetUserRequest{Id: missingID})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext gRPC call: %v, want UNAVAILABLE", err)
		}
	})

	t.Run("case=plaintext HTTP refused", func(t *testing.T) {
		req, err := http.NewRequest("GET", "http://"+ts.HTTPAddr+"/v1/users/"+missingID, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Fatalf("plaintext HTTP: %d %s, want net/http's 400 for HTTP to an HTTPS server", resp.StatusCode, body)
		}
	})

	t.Run("case=TLS 1.1 refused", func(t *testing.T) {
		for _, addr := range []string{ts.GRPCAddr, ts.HTTPAddr} {
			cfg := ts.clientTLS()
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			if conn, err := tls.Dial("tcp", addr, cfg); err == nil {
				v := conn.ConnectionState().Version
				conn.Close()
				t.Fatalf("%s accepted TLS version %x", addr, v)
			}
		}
	})

	// Refused handshakes leave nothing but JSON on stderr.
	for line := range strings.Lines(ts.logs.String()) {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON: %s", line)
		}
	}
}

// The certificate is re-read on SIGHUP and when the files change; a pair
// that does not load leaves the previous certificate served, and the
// server keeps serving.
func TestTLSReload(t *testing.T) {
	t.Parallel()
	ts := startTLS(t)
	ts.wantPresented(t, 1, "at start")

	// Same sizes and times: only SIGHUP can tell.
	ts.write(t, 2, tlsStamp)
	ts.wantPresented(t, 1, "files replaced unnoticeably, before SIGHUP")
	ts.hup(t)
	ts.waitPresented(t, 2, "after SIGHUP")

	ts.write(t, 3, tlsStamp.Add(time.Second))
	ts.wantPresented(t, 3, "at the first handshake after the files changed")

	ts.writeMismatched(t, 4, tlsStamp.Add(2*time.Second))
	ts.wantPresented(t, 3, "after a change to a mismatched pair")
	ts.waitLog(t, 1, "TLS certificate not reloaded")
	ts.hup(t)
	ts.waitLog(t, 2, "TLS certificate not reloaded")
	ts.wantPresented(t, 3, "after SIGHUP with a mismatched pair")

	if r := ts.https(t, false, "GET", "/v1/users/"+missingID, ""); r.Status != http.StatusNotFound {
		t.Fatalf("REST after the failed reloads: %d %s", r.Status, r.Body)
	}
	if _, err := ts.grpcTLS(t).GetUser(context.Background(), &usersv1.GetUserRequest{Id: missingID}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC after the failed reloads: %v", err)
	}
}

func (ts *tlsServer) hup(t *testing.T) {
	t.Helper()
	if err := ts.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitPresented waits (bounded) for both listeners to present the
// certificate: SIGHUP is handled asynchronously.
func (ts *tlsServer) waitPresented(t *testing.T, serial int64, when string) {
	t.Helper()
	deadline := time.Now().Add(wait(10 * time.Second))
	for ts.presented(t, ts.GRPCAddr) != serial && time.Now().Before(deadline) {
		select {
		case <-ts.exited:
			t.Fatalf("usersd exited: %v\n%s", ts.exitErr, ts.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	ts.wantPresented(t, serial, when)
}

// waitLog waits (bounded) until the logs hold n lines with msg.
func (ts *tlsServer) waitLog(t *testing.T, n int, msg string) {
	t.Helper()
	limit := wait(10 * time.Second)
	deadline := time.Now().Add(limit)
	for strings.Count(ts.logs.String(), `"msg":"`+msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d %q lines in %v:\n%s", n, msg, limit, ts.logs)
		}
		select {
		case <-ts.exited:
			t.Fatalf("usersd exited: %v\n%s", ts.exitErr, ts.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
