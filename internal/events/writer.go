package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/internal/store"
)

// WriterOptions size the asynchronous writer. The buffer is large enough
// that the benchmark's load never fills it; when it is full anyway,
// callers wait for room (backpressure) rather than events being dropped.
type WriterOptions struct {
	Buffer        int           // events waiting to be written
	BatchSize     int           // events per transaction, at most
	FlushInterval time.Duration // longest an event waits for its batch
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// DefaultWriterOptions keep asynchronous events queryable within 100 ms.
var DefaultWriterOptions = WriterOptions{Buffer: 8192, BatchSize: 512, FlushInterval: 100 * time.Millisecond}

// Appender is the part of the store the writer needs.
type Appender interface {
	AppendEvents(ctx context.Context, events []store.Event) error
}

// Writer writes events in batches, one transaction per batch, from one
// goroutine.
type Writer struct {
	st    Appender
	opts  WriterOptions
	queue chan store.Event
	done  chan struct{}
	once  sync.Once

	waits   prometheus.Counter
	written prometheus.Counter
	failed  prometheus.Counter
}

// NewWriter starts a writer over st. Close it to flush.
func NewWriter(st Appender, opts WriterOptions) *Writer {
	w := &Writer{
		st:    st,
		opts:  opts,
		queue: make(chan store.Event, opts.Buffer),
		done:  make(chan struct{}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usersd_events_backpressure_waits_total",
			Help: "Times a request waited for room in the full event buffer.",
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
		opts.Registerer.MustRegister(w.waits, w.written, w.failed, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "usersd_events_buffered",
			Help: "Events waiting in the buffer of the asynchronous writer.",
		}, func() float64 { return float64(len(w.queue)) }))
	}
	go w.run()
	return w
}

// Record queues ev. When the buffer is full it waits for room: the trail
// has no holes. It must not be called after Close.
func (w *Writer) Record(ev store.Event) {
	select {
	case w.queue <- ev:
		return
	default:
	}
	w.waits.Inc()
	w.queue <- ev
}

// Close writes everything queued and stops the writer. Call it after the
// last Record (after the gRPC server has stopped).
func (w *Writer) Close() {
	w.once.Do(func() { close(w.queue) })
	<-w.done
}

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]store.Event, 0, w.opts.BatchSize)
	timer := time.NewTimer(w.opts.FlushInterval)
	timer.Stop()
	for {
		select {
		case ev, ok := <-w.queue:
			if !ok {
				w.flush(batch)
				return
			}
			if len(batch) == 0 {
				timer.Reset(w.opts.FlushInterval)
			}
			batch = append(batch, ev)
			if len(batch) >= w.opts.BatchSize {
				timer.Stop()
				batch = w.flush(batch)
			}
		case <-timer.C:
			batch = w.flush(batch)
		}
	}
}

// flush writes batch in one transaction, retrying with backoff on failure
// (a database hiccup must not lose events), and returns it emptied.
func (w *Writer) flush(batch []store.Event) []store.Event {
	if len(batch) == 0 {
		return batch
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.st.AppendEvents(ctx, batch)
		cancel()
		if err == nil {
			w.written.Add(float64(len(batch)))
			return batch[:0]
		}
		w.failed.Inc()
		if attempt == maxAttempts {
			w.opts.Logger.Error("events lost: batch could not be written", "events", len(batch), "error", err)
			return batch[:0]
		}
		w.opts.Logger.Warn("writing events failed, retrying", "events", len(batch), "attempt", attempt, "error", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// maxAttempts bounds retries of one batch (about a minute of backoff), so
// a permanently broken database cannot wedge the writer or shutdown.
const maxAttempts = 20
