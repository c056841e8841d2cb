package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/internal/store"
)

// WriterOptions size the asynchronous writer. The buffer is large enough
// that the benchmark's load never fills it; when it is full anyway,
// callers wait for room (backpressure), up to their deadline, rather than
// events being dropped.
type WriterOptions struct {
	Buffer        int           // events waiting to be written, at least 2
	BatchSize     int           // events per transaction, at most
	FlushInterval time.Duration // longest an event waits for its batch
	// MaxBackoff caps the wait between retries of a failing batch (the
	// first wait is 50 ms, doubling); it is also about the longest a
	// recovered database waits for the backlog. 0 means 2 s.
	MaxBackoff time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultWriterOptions keep asynchronous events queryable within 100 ms.
var DefaultWriterOptions = WriterOptions{Buffer: 8192, BatchSize: 512, FlushInterval: 100 * time.Millisecond}

// Retry timing of a batch that could not be written.
const (
	minBackoff        = 50 * time.Millisecond
	defaultMaxBackoff = 2 * time.Second
	writeTimeout      = 10 * time.Second
)

// Errors of Start.
var (
	// ErrBufferFull: the buffer is full and the database is failing, so
	// no room is coming soon: the call is refused at once.
	ErrBufferFull = errors.New("events: buffer full while the database is failing")
	// ErrClosed: the writer was closed.
	ErrClosed = errors.New("events: writer closed")
)

// Appender is the part of the store the writer needs.
type Appender interface {
	AppendEvents(ctx context.Context, events []store.Event) error
}

// Writer writes events in batches, one transaction per batch, from one
// goroutine, oldest first. A batch that fails is retried with backoff for
// as long as the writer runs; events wait in the bounded buffer meanwhile.
//
// Each call's START takes room for two events: its own and its outcome's,
// so a call that started can always record how it ended.
type Writer struct {
	st   Appender
	opts WriterOptions

	mu       sync.Mutex
	queue    []store.Event // waiting to be written, oldest first
	writing  int           // the first events of queue, the batch being written
	held     int           // room held for the outcomes of started calls
	failing  bool          // the last write failed
	lastErr  error         // of the last failed write
	closed   bool
	waiters  int           // Starts waiting for room
	room     chan struct{} // closed (and replaced) when waiters should look again
	closeCtx context.Context

	wake      chan struct{} // capacity 1: events were queued
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when run returns
	closeOnce sync.Once
	lossOnce  sync.Once

	waits, refused, written, failed prometheus.Counter

	hooks *writerHooks // tests only; nil in production
}

// writerHooks let tests observe the writer.
type writerHooks struct {
	signaled func() // signal was called: run may be woken
}

// NewWriter starts a writer over st. Close it to flush.
func NewWriter(st Appender, opts WriterOptions) *Writer {
	return newWriter(st, opts, nil)
}

// newWriter is NewWriter with hooks for tests.
func newWriter(st Appender, opts WriterOptions, hooks *writerHooks) *Writer {
	opts.Buffer = max(opts.Buffer, 2)
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	w := &Writer{
		st:    st,
		opts:  opts,
		room:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		hooks: hooks,
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersd_events_backpressure_waits_total",
			Help: "Times a request waited for room in the full event buffer.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersd_events_refused_total",
			Help: "Requests refused (503) because the event buffer had no room before their deadline, or none was coming.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersd_events_written_total",
			Help: "Events written by the asynchronous writer.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersd_events_write_failures_total",
			Help: "Failed batch writes (retried).",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(w.waits, w.refused, w.written, w.failed, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "usersd_events_buffered",
			Help: "Events waiting in the buffer of the asynchronous writer.",
		}, func() float64 { return float64(w.queued()) }))
	}
	go w.run()
	return w
}

// Start queues a call's START event and holds room for its outcome (see
// End). When the buffer is full it waits for room until ctx is done, and
// fails then; while writes are failing it fails at once instead
// (ErrBufferFull): the trail has no holes, and no request waits on it
// without bound.
func (w *Writer) Start(ctx context.Context, ev store.Event) error {
	counted := false
	for {
		w.mu.Lock()
		switch {
		case w.closed:
			w.mu.Unlock()
			return ErrClosed
		case len(w.queue)+w.held+2 <= w.opts.Buffer:
			due := w.queueLocked(ev)
			w.held++
			w.mu.Unlock()
			if due {
				w.signal()
			}
			return nil
		case w.failing:
			w.mu.Unlock()
			w.refused.Inc()
			return ErrBufferFull
		}
		w.waiters++
		room := w.room
		w.mu.Unlock()
		if !counted {
			w.waits.Inc()
			counted = true
		}
		expired := false
		select {
		case <-room:
		case <-ctx.Done():
			expired = true
		}
		w.mu.Lock()
		w.waiters--
		w.mu.Unlock()
		if expired {
			w.refused.Inc()
			return fmt.Errorf("events: waiting for room in the buffer: %w", context.Cause(ctx))
		}
	}
}

// End queues the outcome of a started call in the room its Start held, or
// gives that room back when ev is nil (the outcome was written elsewhere,
// or there is none). It never waits. Call it once per successful Start.
func (w *Writer) End(ev *store.Event) {
	w.mu.Lock()
	w.held--
	due := false
	if ev != nil {
		due = w.queueLocked(*ev)
	} else {
		w.wakeWaiters()
	}
	w.mu.Unlock()
	if due {
		w.signal()
	}
}

// forgetWithin bounds how far back from the newest event Committed looks
// for a START: far enough for the events queued while a mutation ran, short
// enough to stay cheap under the lock however long the queue.
const forgetWithin = 256

// Committed gives back the room held for the outcome of a call whose store
// committed its START and SUCCESS with its change, and drops that START
// from the queue when it is found there and its batch is not being
// written: writing it again would be a no-op, the store skips an event
// whose id it has. It never waits. Call it instead of End.
func (w *Writer) Committed(startID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held--
	for i := len(w.queue) - 1; i >= max(w.writing, len(w.queue)-forgetWithin); i-- {
		if w.queue[i].ID == startID {
			// Past the batch being written, which shares the array.
			w.queue = slices.Delete(w.queue, i, i+1)
			break
		}
	}
	w.wakeWaiters()
}

// Close writes what is queued and stops the writer, giving up when ctx
// ends (a database that stays down must not hold up shutdown); the events
// not written by then are reported in one log line. Call it after the
// last Start (after the gRPC server has stopped).
func (w *Writer) Close(ctx context.Context) {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.closeCtx = ctx
		w.mu.Unlock()
		close(w.stop)
	})
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	w.lossOnce.Do(func() {
		w.mu.Lock()
		lost, err := len(w.queue), w.lastErr
		w.mu.Unlock()
		if lost > 0 {
			w.opts.Logger.Error("events lost: not written before the shutdown deadline", "count", lost, "error", err)
		}
	})
}

// queueLocked appends ev to the queue and reports whether run is to be
// signalled: ev is one run waits for (see waitForBatch), the first of a
// batch, which starts the flush timer, or the one that makes the batch
// full. The events between wake no one: waking the writer for each, only
// for it to count them and wait again, was about one goroutine switch per
// read at 32 clients (12,000 a second in a runtime trace of REST GETs).
// Called with mu held.
func (w *Writer) queueLocked(ev store.Event) (due bool) {
	w.queue = append(w.queue, ev)
	waiting := len(w.queue) - w.writing // not in the batch being written
	return waiting == 1 || waiting == w.opts.BatchSize
}

// signal tells run that a batch may be due.
func (w *Writer) signal() {
	if w.hooks != nil && w.hooks.signaled != nil {
		w.hooks.signaled()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wakeWaiters lets every waiting Start look again. Called with mu held.
func (w *Writer) wakeWaiters() {
	if w.waiters > 0 {
		close(w.room)
		w.room = make(chan struct{})
	}
}

func (w *Writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *Writer) run() {
	defer close(w.done)
	for w.waitForBatch() {
		if !w.writeOldest(context.Background(), w.stop) {
			break
		}
	}
	// Closing: write the rest until the close deadline.
	w.mu.Lock()
	ctx := w.closeCtx
	w.mu.Unlock()
	for w.queued() > 0 {
		if !w.writeOldest(ctx, nil) {
			return
		}
	}
}

// waitForBatch waits until a batch is due: BatchSize events queued, or
// FlushInterval after the writer saw the first one. It returns false when
// the writer is closed. It is woken when the first event of a batch is
// queued and when the batch fills (queueLocked); it counts the queue itself
// on entry, for the events queued while the last batch was written.
func (w *Writer) waitForBatch() bool {
	for w.queued() == 0 {
		select {
		case <-w.wake:
		case <-w.stop:
			return false
		}
	}
	timer := time.NewTimer(w.opts.FlushInterval)
	defer timer.Stop()
	for w.queued() < w.opts.BatchSize {
		select {
		case <-w.wake:
		case <-timer.C:
			return true
		case <-w.stop:
			return false
		}
	}
	return true
}

// writeOldest writes the oldest batch in one transaction, retrying with
// backoff (a database that is down must not lose events) until it is
// written, ctx ends, or stop is closed. It reports whether it wrote.
func (w *Writer) writeOldest(ctx context.Context, stop <-chan struct{}) bool {
	backoff := min(minBackoff, w.opts.MaxBackoff)
	var since time.Time
	for attempt := 1; ; attempt++ {
		w.mu.Lock()
		// No copy: the queue's head is never written, only appended to
		// past its end and resliced (wrote), and the full slice expression
		// keeps appends off the batch's array.
		n := min(len(w.queue), w.opts.BatchSize)
		batch := w.queue[:n:n]
		w.writing = n
		w.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := w.st.AppendEvents(actx, batch)
		cancel()
		if err == nil {
			w.wrote(len(batch), attempt, since)
			return true
		}
		if attempt == 1 {
			since = time.Now()
		}
		w.writeFailed(err, len(batch), attempt)
		retry := time.NewTimer(backoff)
		select {
		case <-retry.C:
		case <-stop:
			retry.Stop()
			return false
		case <-ctx.Done():
			retry.Stop()
			return false
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

// wrote drops the n events written from the queue and frees their room.
func (w *Writer) wrote(n, attempts int, failingSince time.Time) {
	w.mu.Lock()
	w.queue = w.queue[n:]
	w.writing = 0
	if len(w.queue) == 0 {
		w.queue = nil // let a long backlog's array go
	}
	w.failing = false
	w.wakeWaiters()
	w.mu.Unlock()
	w.written.Add(float64(n))
	if attempts > 1 {
		w.opts.Logger.Info("writing events works again", "attempts", attempts, "failing_for", time.Since(failingSince).Round(time.Millisecond))
	}
}

// writeFailed marks the writer failing, so Starts that find the buffer
// full fail at once, and logs the failure: the first attempt, then ever
// less often (attempts 2, 4, 8, ...), not once per retry.
func (w *Writer) writeFailed(err error, events, attempt int) {
	w.mu.Lock()
	w.writing = 0 // until the next attempt takes its batch again
	w.failing = true
	w.lastErr = err
	w.wakeWaiters() // those waiting for room now fail fast
	w.mu.Unlock()
	w.failed.Inc()
	if attempt&(attempt-1) == 0 {
		w.opts.Logger.Warn("writing events failed, retrying", "events", events, "attempt", attempt, "error", err)
	}
}
