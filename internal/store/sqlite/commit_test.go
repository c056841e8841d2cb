package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// heldStore is a store whose committer the test can hold just before a
// commit, to queue writes behind it that then form one group.
type heldStore struct {
	*Store
	path    string
	queued  chan int      // the queue's length each time a write joins it
	holding chan struct{} // the committer stopped before a commit

	mu      sync.Mutex
	gate    chan struct{} // while set, the committer waits on it before a commit
	commits []int         // size of every transaction committed
	redos   int           // groups run again with savepoints
}

func openHeld(t *testing.T) *heldStore {
	t.Helper()
	h := &heldStore{
		path:    filepath.Join(t.TempDir(), "users.db"),
		queued:  make(chan int, 1024),
		holding: make(chan struct{}),
	}
	h.Store = openWith(t, h.path, Options{QuickCheck: true, hooks: &hooks{
		queued: func(n int) {
			select {
			case h.queued <- n:
			default: // nobody waits for lengths that many writes on
			}
		},
		committing: func() {
			h.mu.Lock()
			gate := h.gate
			h.mu.Unlock()
			if gate != nil {
				h.holding <- struct{}{}
				<-gate
			}
		},
		committed: func(n int) {
			h.mu.Lock()
			h.commits = append(h.commits, n)
			h.mu.Unlock()
		},
		redone: func() {
			h.mu.Lock()
			h.redos++
			h.mu.Unlock()
		},
	}})
	// Registered after Open's Close, so it runs first: a test that fails
	// while holding the committer does not hang Close.
	t.Cleanup(h.release)
	return h
}

// release lets a held committer go on.
func (h *heldStore) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
}

// transactions returns the sizes of the transactions committed since the
// last call.
func (h *heldStore) transactions() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.commits
	h.commits = nil
	return n
}

// redone returns how many groups were run again with savepoints since
// the last call.
func (h *heldStore) redone() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.redos
	h.redos = 0
	return n
}

// group runs writes as one group: it holds the committer before the
// commit of a first write (a ping), queues the writes behind it in order,
// then releases it. It returns each write's error, in order.
func (h *heldStore) group(t *testing.T, writes ...func(ctx context.Context) error) []error {
	t.Helper()
	return h.groupCtx(t, nil, writes...)
}

// groupCtx is group with a context per write (nil: the test's); while the
// writes are queued, queuedFn runs (when not nil).
func (h *heldStore) groupCtx(t *testing.T, queuedFn func(), writes ...func(ctx context.Context) error) []error {
	t.Helper()
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
	first := make(chan struct{})
	go func() {
		defer close(first)
		h.Ping(context.Background()) // its outcome is not the test's
	}()
	<-h.holding
	drain(h.queued)
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w(t.Context()) })
		h.waitQueued(t, i+1)
	}
	if queuedFn != nil {
		queuedFn()
	}
	h.release()
	wg.Wait()
	<-first
	return errs
}

// waitQueued waits until the queue holds n writes.
func (h *heldStore) waitQueued(t *testing.T, n int) {
	t.Helper()
	for {
		select {
		case got := <-h.queued:
			if got == n {
				return
			}
		case <-t.Context().Done():
			t.Fatalf("waiting for %d queued writes: %v", n, t.Context().Err())
		}
	}
}

func drain(ch chan int) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func create(s *Store, u store.User, trail ...store.Event) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := s.CreateUser(ctx, u, trail)
		return err
	}
}

func update(s *Store, id string, c store.UserChange, trail ...store.Event) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := s.UpdateUser(ctx, id, c, trail)
		return err
	}
}

func claims(v int) store.UserChange {
	return store.UserChange{SetClaims: true, Claims: []byte(`{"v":` + strconv.Itoa(v) + `}`)}
}

func newUser(link *store.ProviderLink) store.User {
	return store.User{ID: uuid.NewString(), Claims: `{}`, Provider: link}
}

func newLink() *store.ProviderLink {
	return &store.ProviderLink{ProviderID: uuid.NewString(), URL: "https://idp.example", SubjectID: uuid.NewString()}
}

func trailOf(op string) []store.Event {
	return []store.Event{testEvent(op + "_START"), testEvent(op + "_SUCCESS")}
}

// Writes queued while a commit runs share the next transaction: 32
// concurrent writers need two commits, not 32.
func TestGroupCommitSharesTransactions(t *testing.T) {
	h := openHeld(t)
	h.transactions()
	const writers = 32
	writes := make([]func(context.Context) error, writers)
	users := make([]store.User, writers)
	trails := make([][]store.Event, writers)
	for i := range writes {
		users[i] = newUser(newLink())
		trails[i] = trailOf("USER_CREATE")
		writes[i] = create(h.Store, users[i], trails[i]...)
	}
	for i, err := range h.group(t, writes...) {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got := h.transactions(); !slices.Equal(got, []int{1, writers}) {
		t.Errorf("transactions of %v writes, want the ping alone then one of %d", got, writers)
	}
	for i, u := range users {
		if _, err := h.GetUser(t.Context(), u.ID); err != nil {
			t.Errorf("user %d: %v", i, err)
		}
		assertEventsStored(t, h.Store, trails[i]...)
	}
}

// A write that fails on its own (a conflict, a missing user, another
// version) is rolled back alone with its trail; the others of its group
// commit. Each failed before it changed anything, in the statement that
// would have: SQLite undid that statement, and the group is not run again.
func TestGroupWriteFailsAlone(t *testing.T) {
	h := openHeld(t)
	ctx := t.Context()
	taken := newLink()
	owner, err := h.CreateUser(ctx, newUser(taken), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.CreateUser(ctx, newUser(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newUser(newLink())
	trails := [][]store.Event{trailOf("USER_CREATE"), trailOf("USER_UPDATE"), trailOf("USER_DELETE"),
		trailOf("USER_UPDATE"), trailOf("USER_DELETE"), trailOf("USER_UPDATE")}
	steal := claims(9)
	steal.SetProvider, steal.Provider = true, taken
	stale := claims(8)
	stale.IfVersion = 5
	h.transactions()
	errs := h.group(t,
		create(h.Store, fresh, trails[0]...),
		// A taken link, a missing user, another version twice.
		update(h.Store, other.ID, steal, trails[1]...),
		func(ctx context.Context) error { return h.DeleteUser(ctx, uuid.NewString(), 0, trails[2]) },
		update(h.Store, other.ID, stale, trails[3]...),
		func(ctx context.Context) error { return h.DeleteUser(ctx, other.ID, 5, trails[4]) },
		update(h.Store, owner.ID, claims(2), trails[5]...),
	)
	for i, want := range []error{nil, store.ErrProviderLinkConflict, store.ErrNotFound,
		store.ErrVersionMismatch, store.ErrVersionMismatch, nil} {
		if !errors.Is(errs[i], want) {
			t.Errorf("write %d: err = %v, want %v", i, errs[i], want)
		}
	}
	if got := h.transactions(); !slices.Equal(got, []int{1, 6}) {
		t.Errorf("transactions of %v writes, want [1 6]", got)
	}
	if n := h.redone(); n != 0 {
		t.Errorf("the group was run again %d times; no write failed after a change", n)
	}
	if _, err := h.GetUser(ctx, fresh.ID); err != nil {
		t.Errorf("the create beside the failures: %v", err)
	}
	if got, _ := h.GetUser(ctx, owner.ID); got.Claims != `{"v":2}` || *got.Provider != *taken {
		t.Errorf("owner after the group: claims %s, provider %+v; want {\"v\":2} and the link kept", got.Claims, got.Provider)
	}
	if got, _ := h.GetUser(ctx, other.ID); got.Claims != `{}` || got.Provider != nil {
		t.Errorf("the conflicting update left claims %s, provider %+v; want none of it", got.Claims, got.Provider)
	}
	assertEventsStored(t, h.Store, append(trails[0], trails[5]...)...)
	assertEventsAbsent(t, h.Store, slices.Concat(trails[1:5]...)...)
}

// A write that fails after it changed rows is rolled back to its own
// savepoint, the group run again with one for each write: none of its
// changes are kept, and the writes before and after it in the group are.
func TestGroupWriteRolledBackToItsSavepoint(t *testing.T) {
	h := openHeld(t)
	before, after, halfway := newUser(nil), newUser(nil), newUser(nil)
	trail := trailOf("USER_CREATE")
	boom := errors.New("boom")
	errs := h.group(t,
		create(h.Store, before),
		func(ctx context.Context) error {
			// A create with its trail, that then fails.
			return h.write(ctx, "half a write", func(g *groupTx) error {
				if _, err := g.exec(stmtInsertUser, halfway.ID, "{}", nil, nil, nil, 1, 1, 1); err != nil {
					return err
				}
				if err := insertEvents(g, trail, nil); err != nil {
					return err
				}
				return boom
			})
		},
		create(h.Store, after),
	)
	if errs[0] != nil || !errors.Is(errs[1], boom) || errs[2] != nil {
		t.Fatalf("errs = %v, want nil, boom, nil", errs)
	}
	if got := h.transactions(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("transactions of %v writes, want [1 3]", got)
	}
	if n := h.redone(); n != 1 {
		t.Errorf("the group was run again %d times, want once", n)
	}
	for _, u := range []store.User{before, after} {
		if _, err := h.GetUser(t.Context(), u.ID); err != nil {
			t.Errorf("a write beside the failed one: %v", err)
		}
	}
	if _, err := h.GetUser(t.Context(), halfway.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed write's user was kept: err = %v", err)
	}
	assertEventsAbsent(t, h.Store, trail...)
}

// The user writes are OR FAIL (no statement journal), so a write whose
// claims trigger fails after the row is written keeps that row until the
// group undoes it: the group is run again with savepoints, and neither the
// failed create nor the failed update leaves anything, in users or in the
// claims index, while the writes around them are kept.
func TestGroupTriggerFailureUndone(t *testing.T) {
	h := openHeld(t)
	ctx := t.Context()
	owner := newUser(newLink())
	if _, err := h.CreateUser(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	before, broken, after := newUser(nil), newUser(newLink()), newUser(nil)
	broken.Claims = `{"not json"` // json_tree fails in the trigger, after the insert
	trails := [][]store.Event{trailOf("USER_CREATE"), trailOf("USER_CREATE"), trailOf("USER_UPDATE"), trailOf("USER_CREATE")}
	h.transactions()
	errs := h.group(t,
		create(h.Store, before, trails[0]...),
		create(h.Store, broken, trails[1]...),
		update(h.Store, owner.ID, store.UserChange{SetClaims: true, Claims: []byte(`[1,`), SetProvider: true}, trails[2]...),
		create(h.Store, after, trails[3]...),
	)
	if errs[0] != nil || errs[1] == nil || errs[2] == nil || errs[3] != nil {
		t.Fatalf("errs = %v, want nil, an error, an error, nil", errs)
	}
	if n := h.redone(); n != 1 {
		t.Errorf("the group was run again %d times, want once", n)
	}
	for _, u := range []store.User{before, after} {
		if _, err := h.GetUser(ctx, u.ID); err != nil {
			t.Errorf("a write beside the failed ones: %v", err)
		}
	}
	if _, err := h.GetUser(ctx, broken.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed create's user was kept: err = %v", err)
	}
	if got, err := h.GetUser(ctx, owner.ID); err != nil || got.Claims != owner.Claims || got.Provider == nil || got.Version != 1 {
		t.Errorf("the failed update changed the user: %+v, %v", got, err)
	}
	var orphans int
	if err := h.w.QueryRowContext(ctx, `SELECT count(*) FROM user_claims WHERE seq NOT IN (SELECT seq FROM users)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d claims index rows of no user (%v)", orphans, err)
	}
	assertEventsStored(t, h.Store, append(trails[0], trails[3]...)...)
	assertEventsAbsent(t, h.Store, slices.Concat(trails[1:3]...)...)
}

// The trails of a group are stored together after its last write; when
// one of them cannot be stored, the group is run again with savepoints,
// and that trail's write alone fails, with none of its changes kept.
func TestGroupTrailRefusedFailsItsWriteAlone(t *testing.T) {
	h := openHeld(t)
	if _, err := h.w.ExecContext(t.Context(), `CREATE TEMP TRIGGER refuse BEFORE INSERT ON events
		WHEN NEW.type = 'REFUSED' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	users := []store.User{newUser(newLink()), newUser(newLink()), newUser(newLink())}
	trails := [][]store.Event{trailOf("USER_CREATE"), {testEvent("USER_CREATE_START"), testEvent("REFUSED")}, trailOf("USER_CREATE")}
	h.transactions()
	errs := h.group(t,
		create(h.Store, users[0], trails[0]...),
		create(h.Store, users[1], trails[1]...),
		create(h.Store, users[2], trails[2]...),
	)
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errs = %v, want nil, an error, nil", errs)
	}
	if got := h.transactions(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("transactions of %v writes, want [1 3]", got)
	}
	if n := h.redone(); n != 1 {
		t.Errorf("the group was run again %d times, want once", n)
	}
	for _, i := range []int{0, 2} {
		if _, err := h.GetUser(t.Context(), users[i].ID); err != nil {
			t.Errorf("user %d: %v", i, err)
		}
		assertEventsStored(t, h.Store, trails[i]...)
	}
	if _, err := h.GetUser(t.Context(), users[1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the create whose trail was refused was kept: err = %v", err)
	}
	assertEventsAbsent(t, h.Store, trails[1][0])
}

// A write that fails after pooling its trail, having changed nothing,
// fails alone without a redo, and its pooled trail is not stored.
func TestGroupPooledTrailOfFailedWriteDropped(t *testing.T) {
	h := openHeld(t)
	users := []store.User{newUser(nil), newUser(nil)}
	trails := [][]store.Event{trailOf("USER_CREATE"), trailOf("USER_UPDATE"), trailOf("USER_CREATE")}
	boom := errors.New("boom")
	h.transactions()
	errs := h.group(t,
		create(h.Store, users[0], trails[0]...),
		func(ctx context.Context) error {
			return h.write(ctx, "trail then failure", func(g *groupTx) error {
				if err := g.storeTrail(trails[1]); err != nil {
					return err
				}
				return boom
			})
		},
		create(h.Store, users[1], trails[2]...),
	)
	if errs[0] != nil || !errors.Is(errs[1], boom) || errs[2] != nil {
		t.Fatalf("errs = %v, want nil, boom, nil", errs)
	}
	if n := h.redone(); n != 0 {
		t.Errorf("the group was run again %d times; the failed write changed nothing", n)
	}
	for _, u := range users {
		if _, err := h.GetUser(t.Context(), u.ID); err != nil {
			t.Errorf("a write beside the failed one: %v", err)
		}
	}
	assertEventsStored(t, h.Store, append(trails[0], trails[2]...)...)
	assertEventsAbsent(t, h.Store, trails[1]...)
}

// A write that panics fails alone, rolled back, like any failing write:
// the committer serves every writer and must not die with one.
func TestGroupWritePanicFailsAlone(t *testing.T) {
	h := openHeld(t)
	before, after, halfway := newUser(nil), newUser(nil), newUser(nil)
	errs := h.group(t,
		create(h.Store, before),
		func(ctx context.Context) error {
			return h.write(ctx, "panicking write", func(g *groupTx) error {
				if _, err := g.exec(stmtInsertUser, halfway.ID, "{}", nil, nil, nil, 1, 1, 1); err != nil {
					return err
				}
				panic("boom")
			})
		},
		create(h.Store, after),
	)
	if errs[0] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "panicked: boom") || errs[2] != nil {
		t.Fatalf("errs = %v, want nil, a panic error, nil", errs)
	}
	for _, u := range []store.User{before, after} {
		if _, err := h.GetUser(t.Context(), u.ID); err != nil {
			t.Errorf("a write beside the panicking one: %v", err)
		}
	}
	if _, err := h.GetUser(t.Context(), halfway.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the panicking write's user was kept: err = %v", err)
	}
	// The committer is still there.
	if err := create(h.Store, newUser(nil))(t.Context()); err != nil {
		t.Fatalf("a write after the panic: %v", err)
	}
}

// Two creates with the same link in one group: the unique index lets the
// first one queued have it and refuses the second.
func TestGroupSameLinkCreates(t *testing.T) {
	h := openHeld(t)
	link := newLink()
	first, second := newUser(link), newUser(link)
	errs := h.group(t, create(h.Store, first), create(h.Store, second))
	if errs[0] != nil || !errors.Is(errs[1], store.ErrProviderLinkConflict) {
		t.Fatalf("errs = %v, want nil then ErrProviderLinkConflict", errs)
	}
	if got, err := h.GetUser(t.Context(), first.ID); err != nil || *got.Provider != *link {
		t.Errorf("the first create: %+v, %v", got, err)
	}
	if _, err := h.GetUser(t.Context(), second.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the second create was stored: err = %v", err)
	}
}

// A fault during one write of a group (the database is full) fails every
// write of it with ErrUnavailable, also those that ran before it and
// would fit alone, and keeps nothing of any of them.
func TestGroupFaultFailsAll(t *testing.T) {
	h := openHeld(t)
	ctx := t.Context()
	u, err := h.CreateUser(ctx, newUser(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := h.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	setMaxPages(t, h.Store, pages)
	big := newUser(nil)
	big.Claims = `{"s":"` + strings.Repeat("x", 64<<10) + `"}`
	trails := [][]store.Event{trailOf("USER_UPDATE"), trailOf("USER_CREATE")}
	h.transactions()
	errs := h.group(t, update(h.Store, u.ID, claims(1), trails[0]...), create(h.Store, big, trails[1]...))
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("write %d: err = %v, want ErrUnavailable", i, err)
		}
	}
	if got := h.transactions(); len(got) > 1 || (len(got) == 1 && got[0] != 1) {
		t.Errorf("transactions committed: %v, want at most the ping's", got)
	}
	if got, _ := h.GetUser(ctx, u.ID); got.Claims != `{}` {
		t.Errorf("the update was kept: claims %s", got.Claims)
	}
	if _, err := h.GetUser(ctx, big.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the big create was kept: err = %v", err)
	}
	assertEventsAbsent(t, h.Store, append(trails[0], trails[1]...)...)

	// Alone, the small update fits: the group is what failed it.
	if _, err := h.UpdateUser(ctx, u.ID, claims(1), trails[0]); err != nil {
		t.Fatalf("the small update alone: %v", err)
	}
	setMaxPages(t, h.Store, 1<<30)
	if _, err := h.CreateUser(ctx, big, trails[1]); err != nil {
		t.Fatalf("the big create once there is room: %v", err)
	}
}

// When the group cannot commit (here the file check refuses it), every
// write of it fails with ErrUnavailable and none is acknowledged: also
// one refused for a conflict with another write of the group, which did
// not commit either.
func TestGroupCommitFailureFailsAll(t *testing.T) {
	h := openHeld(t)
	ctx := t.Context()
	u, err := h.CreateUser(ctx, newUser(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newUser(nil)
	link := newLink()
	trails := [][]store.Event{trailOf("USER_UPDATE"), trailOf("USER_CREATE")}
	h.transactions()
	repaired := false
	t.Cleanup(func() {
		if !repaired {
			chmod(t, h.path, 0o600)
		}
	})
	errs := h.groupCtx(t, func() { chmod(t, h.path, 0o400) },
		update(h.Store, u.ID, claims(1), trails[0]...),
		create(h.Store, fresh, trails[1]...),
		func(ctx context.Context) error {
			return h.AppendEvents(ctx, []store.Event{testEvent("USER_RETRIEVE_START")})
		},
		create(h.Store, newUser(link)),
		create(h.Store, newUser(link)),
	)
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("write %d: err = %v, want ErrUnavailable", i, err)
		}
	}
	if got := h.transactions(); len(got) != 0 {
		t.Errorf("transactions committed: %v, want none", got)
	}
	chmod(t, h.path, 0o600)
	repaired = true
	if got, _ := h.GetUser(ctx, u.ID); got.Claims != `{}` {
		t.Errorf("the update was kept: claims %s", got.Claims)
	}
	if _, err := h.GetUser(ctx, fresh.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the create was kept: err = %v", err)
	}
	assertEventsAbsent(t, h.Store, append(trails[0], trails[1]...)...)
	assertNoEvents(t, h.Store)
}

// A write whose caller gives up while it is queued never runs; one whose
// savepoint ran stays in its group, and its caller learns that it
// committed.
func TestGroupCallerGivesUp(t *testing.T) {
	h := openHeld(t)
	queuedCtx, cancelQueued := context.WithCancel(t.Context())
	gone := newUser(nil)
	var queuedErr error
	done := make(chan struct{})
	var kept store.User
	// Queued behind the held ping: one write that stays, then one whose
	// caller gives up before the committer is released.
	errs := h.groupCtx(t, func() {
		go func() {
			defer close(done)
			_, queuedErr = h.CreateUser(queuedCtx, gone, nil)
		}()
		h.waitQueued(t, 2)
		cancelQueued()
		<-done // returns while the committer is still held: it was removed
	}, func(ctx context.Context) error {
		var err error
		kept, err = h.CreateUser(ctx, newUser(nil), nil)
		return err
	})
	if !errors.Is(queuedErr, context.Canceled) {
		t.Errorf("the queued write whose caller gave up: err = %v, want context.Canceled", queuedErr)
	}
	if _, err := h.GetUser(t.Context(), gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the write given up was stored: err = %v", err)
	}
	if errs[0] != nil {
		t.Errorf("the write beside it: %v", errs[0])
	}
	if _, err := h.GetUser(t.Context(), kept.ID); err != nil {
		t.Errorf("the write beside it was not stored: %v", err)
	}

	// Given up once its savepoint ran: it waits for the commit and gets
	// the commit's outcome.
	ranCtx, cancelRan := context.WithCancel(t.Context())
	ran := newUser(nil)
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
	ranErr := make(chan error, 1)
	go func() {
		_, err := h.CreateUser(ranCtx, ran, nil)
		ranErr <- err
	}()
	<-h.holding // its savepoint ran; the commit is held
	cancelRan()
	h.release()
	if err := <-ranErr; err != nil {
		t.Errorf("the write given up after it ran: err = %v, want nil (it committed)", err)
	}
	if _, err := h.GetUser(t.Context(), ran.ID); err != nil {
		t.Errorf("the write given up after it ran was not stored: %v", err)
	}
}

// After Close, writes are refused rather than queued for no one.
func TestWriteAfterClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(t.Context(), newUser(nil), nil); !errors.Is(err, errClosed) {
		t.Errorf("CreateUser after Close: err = %v, want errClosed", err)
	}
}

func setMaxPages(t *testing.T, s *Store, n int) {
	t.Helper()
	// The writer pool has one connection, so this reaches the one that
	// writes; the committer holds it only while it commits.
	if _, err := s.w.ExecContext(t.Context(), "PRAGMA max_page_count = "+strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
}

func assertEventsStored(t *testing.T, s *Store, events ...store.Event) {
	t.Helper()
	if got := storedEvents(t, s, events); len(got) != len(events) {
		t.Errorf("%d of %d events stored", len(got), len(events))
	}
}

func assertEventsAbsent(t *testing.T, s *Store, events ...store.Event) {
	t.Helper()
	if got := storedEvents(t, s, events); len(got) != 0 {
		t.Errorf("%d events stored, want none: %+v", len(got), got)
	}
}

func storedEvents(t *testing.T, s *Store, events []store.Event) []store.Event {
	t.Helper()
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	got, _, err := s.ListEvents(t.Context(), store.EventFilter{IDs: ids, Limit: len(ids) + 1})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	return got
}
