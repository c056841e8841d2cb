package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/usersd/usersd/internal/store"
)

// maxGroup bounds the writes one transaction takes. A group is whatever
// queued while the previous commit ran, and while the committer yielded
// before taking it, so under light load it is one write; the bound keeps
// a burst's transaction (and the wait of its first caller) short.
const maxGroup = 128

// maxGatherYields bounds the yields with which the committer lets more
// writes join a group (see take): 4 gathered as many as 9 did.
const maxGatherYields = 4

// errClosed: a write was asked of a closed store.
var errClosed = errors.New("store is closed")

// writeReq is one write waiting for the committer: a mutation with its
// trail, a batch of events, a probe.
type writeReq struct {
	ctx   context.Context
	apply func(g *groupTx) error
	err   error         // the write's outcome, set before done is closed
	done  chan struct{} // closed once the group's transaction has ended
}

// committer is the queue of writes and the state of the goroutine that
// commits them (commitLoop). The queue holds at most one write per
// waiting caller, so the callers' own limits bound it.
type committer struct {
	mu     sync.Mutex
	queue  []*writeReq
	closed bool

	wake    chan struct{} // capacity 1: a write was queued, or the store closed
	stopped chan struct{} // closed when commitLoop returns
	limit   int           // writes per group, at most
	hooks   *hooks
}

// hooks let tests pause and observe the committer; nil in production.
type hooks struct {
	queued     func(n int) // a write joined the queue, which now holds n (called with the queue locked)
	committing func()      // the writes of a group ran; their commit comes next
	committed  func(n int) // a transaction of n writes committed
	redone     func()      // a group is run again with savepoints
}

func newCommitter(limit int, h *hooks) *committer {
	if limit <= 0 {
		limit = maxGroup
	}
	return &committer{
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		limit:   limit,
		hooks:   h,
	}
}

// write runs apply as one write of a group transaction and returns once
// that transaction has ended: nil only when it committed, with apply's
// changes. apply runs inside a savepoint of its own, so an error it
// returns undoes its changes and no one else's; that error is returned
// once the others have committed. When the group cannot commit (a fault:
// disk full, file read-only, ...), every write of it fails with the
// group's error and nothing of any is kept. A caller whose ctx ends while
// its write is still queued gets ctx's error and the write never runs;
// once the committer has taken it, the caller waits for the outcome,
// which may be a commit.
func (s *Store) write(ctx context.Context, op string, apply func(g *groupTx) error) error {
	if err := ctx.Err(); err != nil {
		return opError(op, err)
	}
	r := &writeReq{ctx: ctx, apply: apply, done: make(chan struct{})}
	if !s.c.enqueue(r) {
		return opError(op, errClosed)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if s.c.remove(r) {
			return opError(op, ctx.Err())
		}
		<-r.done
	}
	if r.err != nil {
		return opError(op, r.err)
	}
	return nil
}

// enqueue queues r for the committer; false when the store is closed.
func (c *committer) enqueue(r *writeReq) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, r)
	if c.hooks != nil && c.hooks.queued != nil {
		c.hooks.queued(len(c.queue))
	}
	c.mu.Unlock()
	c.signal()
	return true
}

// remove takes r out of the queue; false when the committer took it first.
func (c *committer) remove(r *writeReq) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.queue, r)
	if i < 0 {
		return false
	}
	c.queue = slices.Delete(c.queue, i, i+1)
	return true
}

func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take waits for queued writes and moves up to limit of them, oldest
// first, into group. It returns false once the store is closed and
// nothing is left to write.
func (c *committer) take(group []*writeReq) ([]*writeReq, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) == 0 {
		if c.closed {
			return nil, false
		}
		c.mu.Unlock()
		<-c.wake
		c.mu.Lock()
	}
	// The write that woke us made us the next goroutine to run, ahead of
	// the callers about to queue theirs: yield, and again while yielding
	// still brings writes, a few times at most. Each write that joins this
	// group spares one commit and its fsync. Measured at 32 clients on one
	// core: groups of 14 writes became 18, creates and updates 9-10%
	// faster and their p99 lower. Alone, a write waits one yield.
	for range maxGatherYields {
		if len(c.queue) >= c.limit {
			break
		}
		before := len(c.queue)
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
		if len(c.queue) == before {
			break
		}
	}
	n := min(len(c.queue), c.limit)
	group = append(group[:0], c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return group, true
}

// stop refuses new writes and waits until the committer has written the
// queued ones and returned.
func (c *committer) stop() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.signal()
	<-c.stopped
}

// commitLoop is the committer: the only goroutine that writes. Each turn
// it commits, in one transaction and so with one fsync, every write that
// queued while the previous commit ran. A lone write is committed at
// once: nothing waits for company.
func (s *Store) commitLoop() {
	defer close(s.c.stopped)
	var group []*writeReq
	for {
		var ok bool
		if group, ok = s.c.take(group); !ok {
			return
		}
		err := s.commitGroup(group)
		for _, r := range group {
			if err != nil {
				// The transaction rolled back: whatever a write decided
				// inside it (a conflict with a write of the group, say)
				// may not hold, so each gets the group's error.
				r.err = err
			}
			close(r.done)
		}
		clear(group) // let the answered requests go
	}
}

// errRedo: a write of a group run without savepoints failed after it had
// changed something, which cannot be undone alone. See commitGroup.
var errRedo = errors.New("a write failed after changing rows: redo the group with savepoints")

// commitGroup applies the writes of group and commits them together when
// the database file is still the one opened, writable. A write's own
// failure (not found, a conflict) is kept in its request, with none of
// its changes; a fault fails the group.
//
// The writes run without savepoints first: a savepoint copies every page
// its write changes (8% of an update's instructions, callgrind), and the
// writes hardly ever need it. A write changes rows with one statement that may
// fail (a conflict) and then stores its trail; SQLite undoes a failed
// statement by itself, so a write that fails there leaves nothing to
// undo. Only a write that fails after a change (a trail that cannot be
// stored, a panic) needs its savepoint: then the transaction is rolled
// back and the group run again, each write in a savepoint of its own.
func (s *Store) commitGroup(group []*writeReq) error {
	g := &groupTx{stmts: &s.stmts, cache: s.cache}
	// Runs after the commit or the rollback, before any caller hears of
	// either: the cache may learn the users written again.
	defer func() { s.cache.release(g.changed) }()
	err := s.runGroup(g, group, false)
	if errors.Is(err, errRedo) {
		if s.c.hooks != nil && s.c.hooks.redone != nil {
			s.c.hooks.redone()
		}
		for _, r := range group {
			r.err = nil
		}
		err = s.runGroup(g, group, true)
	}
	return err
}

// runGroup runs the writes of group in one transaction, each in a
// savepoint or none (applyOne, applyBare), and commits it. Without
// savepoints, the trails of the writes are stored together after the
// last write: a statement of many rows costs far less per row than one
// of a write's two. A trail that cannot be stored then asks for the redo,
// which finds whose it is.
func (s *Store) runGroup(g *groupTx, group []*writeReq, savepoints bool) error {
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // after Commit it is a harmless no-op
	g.tx, g.bound = tx, [numWriteStmts]*sql.Stmt{}
	g.poolTrails, g.trails = !savepoints, g.trails[:0]
	apply := s.applyBare
	if savepoints {
		apply = s.applyOne
	}
	applied := 0
	for _, r := range group {
		// Ended between queueing and now: not run, as if removed.
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if err := apply(g, r); err != nil {
			return err
		}
		applied++
	}
	if applied == 0 {
		return nil
	}
	if len(g.trails) > 0 {
		rows, outcomes := pairOutcomes(g.trails)
		err := insertEvents(g, rows, outcomes)
		clear(g.trails) // let the events go
		if isUnavailable(err) {
			return err
		}
		if err != nil {
			return errRedo
		}
	}
	if s.c.hooks != nil && s.c.hooks.committing != nil {
		s.c.hooks.committing()
	}
	// SQLite keeps writing through its open file descriptors after the
	// file is removed or made read-only, and would acknowledge writes
	// that are gone or that the next start cannot make: refuse them here.
	if err := s.file.check(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.c.hooks != nil && s.c.hooks.committed != nil {
		s.c.hooks.committed(applied)
	}
	return nil
}

// applyBare runs r without a savepoint. r's own error is kept in r when r
// had changed nothing yet; after a change it is errRedo. A fault is
// returned for the whole group.
func (s *Store) applyBare(g *groupTx, r *writeReq) error {
	g.dirty = false
	pooled := len(g.trails)
	err := applySafely(r, g)
	if err == nil {
		return nil
	}
	g.trails = g.trails[:pooled] // a failed write's trail is not stored
	switch {
	case isUnavailable(err):
		return err
	case g.dirty:
		return errRedo
	}
	r.err = err
	return nil
}

// applyOne runs r inside a savepoint of g. r's own error is kept in r and
// its changes are rolled back; an error that leaves the transaction
// unusable, or a fault, is returned for the whole group.
func (s *Store) applyOne(g *groupTx, r *writeReq) error {
	if _, err := g.exec(stmtSavepoint); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	err := applySafely(r, g)
	if err == nil {
		if _, err := g.exec(stmtRelease); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		return nil
	}
	// After a fault SQLite may have rolled back the whole transaction.
	if isUnavailable(err) {
		return err
	}
	r.err = err
	if _, err := g.exec(stmtRollbackTo); err != nil {
		return fmt.Errorf("roll back to savepoint: %w", err)
	}
	if _, err := g.exec(stmtRelease); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// applySafely runs r.apply, turning a panic into r's own error: the
// committer goroutine serves every writer, so one write's bug must fail
// that write (INTERNAL to its caller), not crash the process.
func applySafely(r *writeReq, g *groupTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: write panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return r.apply(g)
}

// groupTx is a group's transaction as its writes see it: the store's
// write statements, bound to it on first use.
//
// Its statements never run under a caller's context: one that ends
// interrupts SQLite, which then rolls back the whole transaction, the
// other callers' writes with it.
type groupTx struct {
	tx      *sql.Tx
	stmts   *statements
	bound   [numWriteStmts]*sql.Stmt
	cache   *userCache
	changed []string // ids of the users written, held in cache until the transaction ends
	// dirty: the current write has changed rows (see applyBare). Set by
	// the statements below when they change any, so a write sets it
	// without knowing.
	dirty bool
	// poolTrails: the writes' trails wait in trails for runGroup to store
	// them together (see storeTrail).
	poolTrails bool
	trails     []store.Event
}

// storeTrail stores the trail of a write, the write's last step: at once
// inside a savepoint, else pooled with the trails of the group's other
// writes, stored together before the commit (see runGroup).
func (g *groupTx) storeTrail(trail []store.Event) error {
	if !g.poolTrails {
		rows, outcomes := pairOutcomes(trail)
		return insertEvents(g, rows, outcomes)
	}
	g.trails = append(g.trails, trail...)
	return nil
}

// changeUser is called by a write before it changes the user's row: the
// cache forgets the user until the group's transaction has ended.
func (g *groupTx) changeUser(id string) {
	g.cache.hold(id)
	g.changed = append(g.changed, id)
}

func (g *groupTx) stmt(k writeStmt) *sql.Stmt {
	if g.bound[k] == nil {
		g.bound[k] = g.tx.StmtContext(context.Background(), g.stmts.write[k])
	}
	return g.bound[k]
}

// exec runs the prepared statement k.
func (g *groupTx) exec(k writeStmt, args ...any) (sql.Result, error) {
	res, err := g.stmt(k).ExecContext(context.Background(), args...)
	switch {
	case err != nil && k.changes():
		g.failed(err)
	case err == nil && k.changes():
		g.noteChanges(res)
	}
	return res, err
}

// failed marks the write dirty when the error of a statement that changes
// rows may have come after a change, which SQLite keeps: the user writes
// are OR FAIL (see writeSQL), and a trigger of theirs may fail after the
// row is written. A constraint of the users table is checked before
// anything is written (the provider link taken), and a conditional write
// that matched no row changed none.
func (g *groupTx) failed(err error) {
	if !isProviderConflict(err) && !errors.Is(err, sql.ErrNoRows) {
		g.dirty = true
	}
}

// queryRow runs the prepared query k. A row read from a statement that
// changes rows (RETURNING) is a row it changed.
func (g *groupTx) queryRow(k writeStmt, args ...any) groupRow {
	return groupRow{g.stmt(k).QueryRowContext(context.Background(), args...), g, k.changes()}
}

// execSQL runs a statement that is too rare to keep prepared.
func (g *groupTx) execSQL(query string, args ...any) (sql.Result, error) {
	res, err := g.tx.ExecContext(context.Background(), query, args...)
	if err == nil {
		g.noteChanges(res)
	}
	return res, err
}

// queryRowSQL runs a rare query that changes nothing.
func (g *groupTx) queryRowSQL(query string, args ...any) *sql.Row {
	return g.tx.QueryRowContext(context.Background(), query, args...)
}

// noteChanges marks the write dirty when res changed rows, or may have.
func (g *groupTx) noteChanges(res sql.Result) {
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		g.dirty = true
	}
}

// groupRow is a *sql.Row of a groupTx statement.
type groupRow struct {
	row     *sql.Row
	g       *groupTx
	changes bool
}

func (r groupRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	switch {
	case err != nil && r.changes:
		r.g.failed(err)
	case err == nil && r.changes:
		r.g.dirty = true
	}
	return err
}
