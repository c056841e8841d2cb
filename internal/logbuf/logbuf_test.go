package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps each write it gets, and signals each on written.
type recorder struct {
	mu      sync.Mutex
	writes  []string
	written chan struct{}
}

func newRecorder() *recorder { return &recorder{written: make(chan struct{}, 1000)} }

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, string(p))
	r.mu.Unlock()
	r.written <- struct{}{}
	return len(p), nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// Lines written together reach the underlying writer in one write, once
// the interval after the first has passed, and not before.
func TestLinesWrittenTogetherAfterTheInterval(t *testing.T) {
	// The interval leaves the three writes and the check after them far
	// more time than they need, so the lines are still held then.
	const interval = 300 * time.Millisecond
	r := newRecorder()
	b := New(r, 1<<10, interval)
	defer b.Close()
	start := time.Now()
	for i := range 3 {
		fmt.Fprintf(b, "line %d\n", i)
	}
	if got := r.got(); len(got) != 0 {
		t.Fatalf("written at once: %q", got)
	}
	<-r.written
	if waited := time.Since(start); waited < interval {
		t.Errorf("written after %v, before the interval", waited)
	}
	if got := r.got(); len(got) != 1 || got[0] != "line 0\nline 1\nline 2\n" {
		t.Fatalf("writes %q, want the three lines in one", got)
	}
	// The next line starts a new interval.
	fmt.Fprintln(b, "line 3")
	<-r.written
	if got := r.got(); len(got) != 2 || got[1] != "line 3\n" {
		t.Fatalf("writes %q, want line 3 in a second", got)
	}
}

// A line that would overfill the buffer writes what it holds first; a
// line as large as the buffer goes through at once; the order is kept.
func TestFullBufferWrittenFirst(t *testing.T) {
	r := newRecorder()
	b := New(r, 16, time.Hour)
	defer b.Close()
	for _, line := range []string{"aaaaa\n", "bbbbb\n", "ccccc\n", strings.Repeat("d", 20) + "\n", "e\n"} {
		if n, err := b.Write([]byte(line)); err != nil || n != len(line) {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
	want := []string{"aaaaa\nbbbbb\n", "ccccc\n", strings.Repeat("d", 20) + "\n"}
	if got := r.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); len(got) != 4 || got[3] != "e\n" {
		t.Fatalf("after Close, writes %q, want e last", got)
	}
}

// Close writes what is held; after it, every line is written at once.
func TestClose(t *testing.T) {
	r := newRecorder()
	b := New(r, 1<<10, time.Hour)
	fmt.Fprintln(b, "held")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(b, "late")
	if got := r.got(); strings.Join(got, "") != "held\nlate\n" || len(got) != 2 {
		t.Fatalf("writes %q, want held, then late", got)
	}
}

// Warnings and errors are written at once, with the lines before them;
// other records wait.
func TestFlushAt(t *testing.T) {
	r := newRecorder()
	b := New(r, 1<<10, time.Hour)
	defer b.Close()
	log := slog.New(FlushAt(slog.NewTextHandler(b, nil), b, slog.LevelWarn)).With("k", "v").WithGroup("g")
	log.Info("first")
	if got := r.got(); len(got) != 0 {
		t.Fatalf("an info line was written at once: %q", got)
	}
	log.Warn("second")
	got := r.got()
	if len(got) != 1 || !strings.Contains(got[0], "msg=first") || !strings.Contains(got[0], "msg=second") {
		t.Fatalf("writes %q, want the info and the warning together", got)
	}
	log.Error("third")
	if got := r.got(); len(got) != 2 || !strings.Contains(got[1], "msg=third") {
		t.Fatalf("writes %q, want the error at once", got)
	}
}

// Lines written from many goroutines come out whole, each once.
func TestConcurrentLinesWhole(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	b := New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), 256, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				fmt.Fprintf(b, "g%d-%d %s\n", g, i, strings.Repeat("x", i%50))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(out.String()) {
		id, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		var g, i int
		if _, err := fmt.Sscanf(id, "g%d-%d", &g, &i); err != nil || rest != strings.Repeat("x", i%50) || seen[id] {
			t.Fatalf("line %q torn or repeated", line)
		}
		seen[id] = true
	}
	if len(seen) != 8*200 {
		t.Fatalf("%d lines, want %d", len(seen), 8*200)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A failing underlying writer fails the write that flushes, and Flush and
// Close; what could not be written is dropped, not written again.
func TestWriteFailure(t *testing.T) {
	broken := errors.New("disk full")
	var calls int
	b := New(writerFunc(func([]byte) (int, error) {
		calls++
		return 0, broken
	}), 16, time.Hour)
	if _, err := b.Write([]byte("aaaaaaaaaa\n")); err != nil {
		t.Fatalf("a held line: %v", err)
	}
	if n, err := b.Write([]byte("bbbbbbbbbb\n")); !errors.Is(err, broken) || n != 0 {
		t.Fatalf("the line that flushes: %d, %v; want 0 and the writer's error", n, err)
	}
	if err := b.Flush(); err != nil || calls != 1 {
		t.Fatalf("Flush after the failure: %v after %d writes; want nothing to write", err, calls)
	}
	if _, err := b.Write([]byte("c\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, broken) {
		t.Fatalf("Close: %v, want the writer's error", err)
	}
}
