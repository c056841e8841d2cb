package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// `usersd backup` taken while writers keep creating users is a sound
// database holding every user acknowledged before it began, and only
// users that were acknowledged: a server started on it serves them.
func TestBackupUnderWriteLoad(t *testing.T) {
	sqliteOnly(t, "usersd backup copies SQLite files (PostgreSQL has pg_dump)")
	t.Parallel()
	s := start(t, "")
	c := s.grpc()

	var (
		mu       sync.Mutex
		acked    []string
		warm     = make(chan struct{}) // closed once the writers are going
		warmOnce sync.Once
		stop     = make(chan struct{})
		writers  sync.WaitGroup
	)
	for w := range 4 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				claims, _ := structpb.NewStruct(map[string]any{"writer": w, "n": i})
				resp, err := c.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims}})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					warmOnce.Do(func() { close(warm) })
					return
				}
				mu.Lock()
				acked = append(acked, resp.GetUser().GetId())
				n := len(acked)
				mu.Unlock()
				if n >= 50 {
					warmOnce.Do(func() { close(warm) })
				}
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); writers.Wait() })
	t.Cleanup(stopWriters)
	<-warm
	if t.Failed() {
		t.FailNow()
	}

	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	dir := t.TempDir()
	backup := filepath.Join(dir, "users.db")
	out, errOut, code := usersd(t, "", nil, "backup", "--db", s.DB, "--to", backup)
	mu.Lock()
	during := len(acked) - len(before)
	mu.Unlock()
	stopWriters()
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("usersd backup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("%d users acknowledged before the backup began, %d while it ran", len(before), during)
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", fi, err)
	}

	// Restore: a server on the copy (it runs PRAGMA quick_check first).
	restored := start(t, dir)
	rc := restored.grpc()
	var inBackup []string
	req := &usersv1.ListUsersRequest{Limit: proto.Int32(1000)}
	for {
		page, err := rc.ListUsers(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.GetData() {
			inBackup = append(inBackup, u.GetId())
		}
		if page.GetNextCursor() == "" {
			break
		}
		req.Cursor = page.GetNextCursor()
	}
	for _, id := range before {
		if !slices.Contains(inBackup, id) {
			t.Errorf("user %s, acknowledged before the backup began, is not in it", id)
		}
	}
	for _, id := range inBackup {
		if !slices.Contains(acked, id) {
			t.Errorf("user %s is in the backup but was never acknowledged", id)
		}
	}
	if _, err := rc.GetUser(t.Context(), &usersv1.GetUserRequest{Id: before[0]}); err != nil {
		t.Errorf("GetUser on the restored server: %v", err)
	}

	// A second backup never replaces the first.
	if _, errOut, code := usersd(t, "", nil, "backup", "--db", s.DB, "--to", backup); code != 1 || errOut == "" {
		t.Errorf("a backup onto an existing file: exit %d, stderr %q", code, errOut)
	}
}
