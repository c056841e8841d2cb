package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// Faults of the database (contract §3 "Faults"): while it cannot be
// written, writes fail fast with 503 / UNAVAILABLE and nothing of them is
// kept, reads keep working with their events queued, /readyz says 503;
// when the fault clears, all of it recovers without a restart.

// dbFault is a way the database stops being writable, and its repair.
type dbFault struct {
	name string
	// tmpfs: the database lives on a small tmpfs of its own (root only).
	tmpfs  bool
	inject func(t *testing.T, s *server)
	repair func(t *testing.T, s *server)
}

var dbFaults = []dbFault{
	{name: "disk full", tmpfs: true,
		inject: func(t *testing.T, s *server) {
			fillDisk(t, filepath.Dir(s.DB))
			// Room left in the WAL's last page may still take a write or
			// two; after that every write needs space.
			for i := range 20 {
				r := s.do(t, "POST", "/v1/users", `{}`)
				if r.Status == http.StatusServiceUnavailable {
					t.Logf("the disk was full for writes after %d more", i)
					return
				}
				if r.Status != http.StatusCreated {
					t.Fatalf("create on a full disk: %d %s", r.Status, r.Body)
				}
			}
			t.Fatal("creates still succeed on a full disk")
		},
		repair: func(t *testing.T, s *server) { remove(t, filepath.Join(filepath.Dir(s.DB), "filler")) }},
	{name: "file read-only",
		inject: func(t *testing.T, s *server) { chmod(t, s.DB, 0o400) },
		repair: func(t *testing.T, s *server) { chmod(t, s.DB, 0o600) }},
	{name: "directory read-only",
		inject: func(t *testing.T, s *server) { chmod(t, filepath.Dir(s.DB), 0o500) },
		repair: func(t *testing.T, s *server) { chmod(t, filepath.Dir(s.DB), 0o700) }},
	{name: "file removed",
		inject: func(t *testing.T, s *server) { rename(t, s.DB, s.DB+".away") },
		repair: func(t *testing.T, s *server) { rename(t, s.DB+".away", s.DB) }},
}

func TestFaultsWritesFailFastAndRecover(t *testing.T) {
	sqliteOnly(t, "it breaks the SQLite file, its directory or its disk")
	t.Parallel()
	for _, fault := range dbFaults {
		t.Run("case="+fault.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if fault.tmpfs {
				dir = tmpfsDir(t, 4<<20)
			}
			s := start(t, dir)
			c := s.grpc()
			id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
			auditor, _ := evToken(t, "fault-auditor", auth.RoleAuditor)
			wantReady(t, s, http.StatusOK)

			fault.inject(t, s)
			repaired := false
			t.Cleanup(func() {
				if !repaired {
					fault.repair(t, s)
				}
			})

			// Writes fail fast, on both transports.
			var refused []string
			var slowest time.Duration
			for _, w := range [][3]string{
				{"POST", "/v1/users", `{"claims":{"b":1}}`},
				{"PUT", "/v1/users/" + id, `{"claims":{"b":2}}`},
				{"DELETE", "/v1/users/" + id, ""},
			} {
				rid := evRID("fault-write")
				begin := time.Now()
				r := evDo(t, s, adminToken, rid, w[0], w[1], w[2])
				slowest = max(slowest, time.Since(begin))
				wantError(t, r, http.StatusServiceUnavailable, "ServiceUnavailable")
				if r.Header.Get("Retry-After") == "" {
					t.Fatalf("%s %s: 503 without Retry-After", w[0], w[1])
				}
				refused = append(refused, rid)
			}
			_, err := c.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{}})
			wantUnavailable(t, "CreateUser", err)
			_, err = c.UpdateUser(t.Context(), &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claimsV(3)}, UpdateMask: mask("claims")})
			wantUnavailable(t, "UpdateUser", err)
			_, err = c.DeleteUser(t.Context(), &usersv1.DeleteUserRequest{Id: id})
			wantUnavailable(t, "DeleteUser", err)
			t.Logf("slowest refused REST write: %v", slowest)

			// Reads keep working, nothing refused was kept, and their
			// events wait in the buffer.
			var reads []string
			for range 5 {
				rid := evRID("fault-read")
				r := evDo(t, s, adminToken, rid, "GET", "/v1/users/"+id, "")
				if r.Status != http.StatusOK || r.JSON(t)["claims"].(map[string]any)["a"] != float64(1) {
					t.Fatalf("GET during the fault: %d %s", r.Status, r.Body)
				}
				reads = append(reads, rid)
			}
			if _, err := c.ListUsers(t.Context(), &usersv1.ListUsersRequest{}); err != nil {
				t.Fatalf("ListUsers during the fault: %v", err)
			}
			wantReady(t, s, http.StatusServiceUnavailable)

			fault.repair(t, s)
			repaired = true
			createUser(t, s, `{"claims":{"after":1}}`)
			if r := s.do(t, "PUT", "/v1/users/"+id, `{"claims":{"a":2}}`); r.Status != http.StatusOK {
				t.Fatalf("PUT after the repair: %d %s", r.Status, r.Body)
			}
			if _, err := c.DeleteUser(t.Context(), &usersv1.DeleteUserRequest{Id: id}); err != nil {
				t.Fatalf("DeleteUser after the repair: %v", err)
			}
			wantReady(t, s, http.StatusOK)

			// The events queued during the fault are written now: the
			// reads' pairs, and the refused writes' START and FAIL.
			for _, rid := range reads {
				evWantPair(t, evPoll(t, s, auditor, rid, 2), rid, "e2e-admin", "USER_RETRIEVE", "SUCCESS")
			}
			for _, rid := range refused {
				evs := evPoll(t, s, auditor, rid, 2)
				if len(evs) != 2 || !strings.HasSuffix(evs[0].Type, "_FAIL") || evs[0].Metadata["code"] != "ServiceUnavailable" {
					t.Fatalf("refused write %s: events %+v, want START and FAIL ServiceUnavailable", rid, evs)
				}
			}
		})
	}
}

// A SIGTERM while the database fails still ends the process within
// --shutdown-timeout, and the events it could not write are reported in
// one log line with their count.
func TestFaultsShutdownWithFailingDatabase(t *testing.T) {
	sqliteOnly(t, "it breaks the SQLite file, its directory or its disk")
	t.Parallel()
	dir := tmpfsDir(t, 4<<20)
	const budget = 3 * time.Second
	s := start(t, dir, "--shutdown-timeout", budget.String())
	id := createUser(t, s, `{}`)["id"].(string)
	dbFaults[0].inject(t, s) // disk full
	defer dbFaults[0].repair(t, s)
	const reads = 10
	for range reads {
		if r := s.do(t, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
			t.Fatalf("GET on a full disk: %d %s", r.Status, r.Body)
		}
	}
	begin := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.logs)
	}
	took := time.Since(begin)
	t.Logf("stopped %v after SIGTERM (--shutdown-timeout %v)", took, budget)
	t.Logf("LOGS\n%s", s.logs)
	if took > budget+time.Second {
		t.Errorf("shutdown took %v, budget %v", took, budget)
	}
	var lost []map[string]any
	for line := range strings.Lines(s.logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(fmt.Sprint(rec["msg"]), "events lost") {
			lost = append(lost, rec)
		}
	}
	if len(lost) != 1 {
		t.Fatalf("%d log lines report lost events, want 1:\n%s", len(lost), s.logs)
	}
	if n, _ := lost[0]["count"].(float64); n < 2*reads {
		t.Errorf("lost count %v, want at least the %d events of the reads", lost[0]["count"], 2*reads)
	}
}

// A database that fails its integrity check at startup is refused with a
// message naming the file; --db-quick-check=false skips the check.
func TestFaultsDamagedDatabaseRefused(t *testing.T) {
	sqliteOnly(t, "it breaks the SQLite file, its directory or its disk")
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir)
	for range 20 {
		createUser(t, s, `{"claims":{"s":"`+strings.Repeat("x", 1000)+`"}}`)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	garbleTable(t, s.DB, "users")

	out := serveMustFail(t, []string{"USERS_JWT_SECRET=" + string(testSecret)}, "--db", s.DB)
	if !strings.Contains(out, s.DB) || !strings.Contains(out, "damaged") || !strings.Contains(out, "quick_check") {
		t.Fatalf("refusal does not name the file and the check:\n%s", out)
	}
	start(t, dir, "--db-quick-check=false") // listens: skipping is the operator's call
}

// tmpfsDir mounts a tmpfs of size bytes on a fresh directory, unmounted
// when t ends (after the server stopped). Mounting needs root: without it
// the test is skipped, except in CI, where it fails.
func tmpfsDir(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs for the disk-full test (needs root): %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		// Detached, as a server that had to be killed may still hold files.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes dir/filler until the file system has no space left.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// garbleTable overwrites the header of table's root page in the database
// file at path.
func garbleTable(t *testing.T, path, table string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	err = db.QueryRowContext(t.Context(), `SELECT rootpage FROM sqlite_schema WHERE name = ?`, table).Scan(&root)
	if err == nil {
		err = db.QueryRowContext(t.Context(), `PRAGMA page_size`).Scan(&pageSize)
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantReady polls /readyz (its probe result is cached up to a second)
// until it answers status.
func wantReady(t *testing.T, s *server, status int) {
	t.Helper()
	wantReadyWithin(t, s, status, wait(5*time.Second))
}

// wantReadyWithin is wantReady with its own bound.
func wantReadyWithin(t *testing.T, s *server, status int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := s.send(t, "GET", "/readyz", "", nil)
		if r.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %s after %v, want %d\n%s", r.Status, r.Body, limit, status, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantUnavailable asserts UNAVAILABLE with a RetryInfo.
func wantUnavailable(t *testing.T, call string, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("%s: %v, want UNAVAILABLE", call, err)
	}
	if grpcRetryDelay(err) <= 0 {
		t.Fatalf("%s: UNAVAILABLE without a RetryInfo: %v", call, st.Details())
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// One server per SQLite file: it keeps users in memory to answer reads, so
// a second `usersd serve` on the same file, whose writes the first would
// not see, is refused with a message naming the file; the first serves on,
// its reads following its own writes.
func TestSecondServerOnOneDatabaseRefused(t *testing.T) {
	sqliteOnly(t, "PostgreSQL is shared by design")
	t.Parallel()
	s := start(t, "")
	u := createUser(t, s, `{"claims":{"n":1}}`)
	id, _ := u["id"].(string)
	if r := s.do(t, "GET", "/v1/users/"+id, ""); r.Status != http.StatusOK {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}

	out := serveMustFail(t, []string{"USERS_JWT_SECRET=" + string(testSecret)}, "--db", s.DB)
	if !strings.Contains(out, s.DB) || !strings.Contains(out, "in use by another process") {
		t.Fatalf("refusal does not name the file and why:\n%s", out)
	}

	if r := s.do(t, "PUT", "/v1/users/"+id, `{"claims":{"n":2}}`); r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	r := s.do(t, "GET", "/v1/users/"+id, "")
	if got := r.JSON(t)["claims"]; r.Status != http.StatusOK || fmt.Sprint(got) != "map[n:2]" {
		t.Fatalf("get after update: %d %s; want the new claims", r.Status, r.Body)
	}
}
