package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

const (
	eventColumns = `id, ts, type, category, request_id, client_id, metadata`
	newestFirst  = ` ORDER BY ts DESC, id DESC`

	// deleteOldEvents deletes the oldest events before a time, a bounded
	// number at a time: SQLite has no DELETE ... LIMIT in its default
	// build, so the subquery picks the keys, oldest first, from the
	// table's own (ts, id) order.
	deleteOldEvents = `DELETE FROM events WHERE (ts, id) IN (
		SELECT ts, id FROM events WHERE ts < ? ORDER BY ts, id LIMIT ?)`

	// maxBranches bounds the branches of a Types listing (see
	// eventsQuery): the service's most, 100 types, so no listing it makes
	// falls back to a scan and a sort. SQLite refuses compound SELECTs of
	// more than 500 terms.
	maxBranches = 100
)

// eventsPerInsert is the most events one statement inserts;
// eventsPerFewInsert, those of a group of a few writes (two each).
const (
	eventsPerInsert    = 32
	eventsPerFewInsert = 8
)

// eventInserts are the statements that insert events, most rows first; the
// last inserts one.
var eventInserts = [...]struct {
	stmt writeStmt
	rows int
}{{stmtInsertEvents, eventsPerInsert}, {stmtInsertEventsFew, eventsPerFewInsert}, {stmtInsertEventPair, 2}, {stmtInsertEvent, 1}}

// insertEventsSQL is the statement that inserts rows events, each once:
// the START of a mutation is written both with the mutation and by the
// asynchronous writer, and whichever comes second is a no-op.
//
// OR IGNORE rather than ON CONFLICT (id) DO NOTHING: every unique key of
// events holds id, so both skip exactly the rows whose id is stored, and
// no column is ever bound NULL. But SQLite keeps a statement journal for a
// statement of several rows that may abort halfway, to undo its earlier
// rows, in memory here (temp_store): with the upsert, that was 1.4-1.9 MB
// more peak memory (the README's Performance section), and journal writes
// on every statement. With OR IGNORE, which resolves every row's conflict
// itself, memory stays as with one row a statement.
func insertEventsSQL(rows int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?)`
	return `INSERT OR IGNORE INTO events (` + eventColumns + `, ts_in_id) VALUES ` + row +
		strings.Repeat(`, `+row, rows-1)
}

// AppendEvents writes events in one transaction: the batch is stored
// whole or not at all. Events whose id is stored already are skipped,
// found by (time, id) when the id carries the time and by id otherwise:
// an id written once with the time it carries and once with another would
// be stored twice. The service never does that: an event's time is its
// id's, and its second write is a copy.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	return s.write(ctx, "append events", func(g *groupTx) error {
		return insertEvents(g, events)
	})
}

// insertEvents inserts events within g. Mutations and AppendEvents share
// it, so every event is stored the same way whichever path wrote it.
// Several rows go to a statement, so the cost of running one (database/sql's
// call, starting and halting the program) is shared: BenchmarkAppendEvents,
// 7.8-8.2 µs an event one to a statement, 5.8-6.2 with 32 (64 gained
// nothing more). The writer's batches hold hundreds under load; the
// trails of a group's writes, two events each, go together (runGroup),
// a pair when a write runs in a savepoint.
func insertEvents(g *groupTx, events []store.Event) error {
	args := make([]any, 0, 8*min(len(events), eventInserts[0].rows))
	for len(events) > 0 {
		i := 0
		for eventInserts[i].rows > len(events) {
			i++
		}
		ins := eventInserts[i]
		args = args[:0]
		for _, e := range events[:ins.rows] {
			ts := e.Time.UnixMilli()
			args = append(args, e.ID, ts, e.Type, e.Category,
				e.RequestID, e.ClientID, string(e.Metadata), tsInID(e.ID, ts))
		}
		if _, err := g.exec(ins.stmt, args...); err != nil {
			return fmt.Errorf("insert events from %s: %w", events[0].ID, err)
		}
		events = events[ins.rows:]
	}
	return nil
}

// tsInID is the ts_in_id of an event (see the migrations): whether id, as
// a UUIDv7, carries ts.
func tsInID(id string, ts int64) bool {
	ms, ok := ids.Millis(id)
	return ok && ms == ts
}

// ListEvents returns up to f.Limit events matching f, newest first. It
// asks for one row more than the page to learn whether another follows.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, bool, error) {
	if f.Limit < 0 {
		return nil, false, fmt.Errorf("sqlite: list events: negative limit %d", f.Limit)
	}
	query, args := eventsQuery(f)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, opError("list events", err)
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, false, opError("list events", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, opError("list events", err)
	}
	if len(events) > f.Limit {
		return events[:f.Limit], true, nil
	}
	return events, false, nil
}

// eventsQuery builds the listing of f, limited to f.Limit+1 rows.
//
// Types are matched by one SELECT per listed type, combined with UNION
// under the outer ORDER BY. Each branch is an equality on an index ending
// in (ts, id), so SQLite merges the branches' ordered streams, drops an
// event that two branches both return, and stops after the page; the
// index being UNIQUE is what spares that merge a sort (see the
// migrations). A single SELECT with "type IN (..)" would collect every
// matching event and sort them: the whole table when it names a common
// type.
//
// Listed request ids select a few events through their own index, so
// then one SELECT filters and sorts those instead. So do listed ids, in
// two branches: the events whose id carries their time are found by their
// key, the times read from the ids, and the others by the index of their
// ids (see the migrations).
func eventsQuery(f store.EventFilter) (string, []any) {
	common := commonConds(f)
	var (
		b    strings.Builder
		args []any
	)
	for i, branch := range branches(f) {
		if i > 0 {
			b.WriteString(" UNION ")
		}
		branch.and(common)
		b.WriteString(`SELECT ` + eventColumns + ` FROM events` + branch.where())
		args = append(args, branch.args...)
	}
	b.WriteString(newestFirst + ` LIMIT ?`)
	return b.String(), append(args, f.Limit+1)
}

// commonConds are the conditions of f that every branch applies.
func commonConds(f store.EventFilter) conds {
	var c conds
	c.in("request_id", f.RequestIDs)
	if f.From != nil {
		c.add("ts >= ?", rules.FromMillisecond(*f.From).UnixMilli())
	}
	// Before and To both bound ts from above, and an index range uses
	// only one of them: keep the one that implies the other, so that a
	// page deep into a listing with To starts reading at its position,
	// not at To. Before comes from a listed event: a whole millisecond.
	switch {
	case f.Before != nil && (f.To == nil || f.Before.Time.UnixMilli() <= f.To.UnixMilli()):
		c.add("(ts, id) < (?, ?)", f.Before.Time.UnixMilli(), f.Before.ID)
	case f.To != nil:
		c.add("ts <= ?", f.To.UnixMilli())
	}
	return c
}

// branches returns the condition of each branch of the listing of f: one
// per listed type, whose union is the Types filter; or, when ids are
// listed, the two ways to find them (idBranches). It returns a single
// branch when there is neither filter, when request ids narrow the
// listing, or past maxBranches (correct, only slower).
func branches(f store.EventFilter) []conds {
	switch {
	case len(f.IDs) > 0:
		return idBranches(f)
	case len(f.Types) == 0:
		return []conds{{}}
	case len(f.RequestIDs) > 0 || len(f.Types) > maxBranches:
		// The unary + keeps the planner off the type index: it likes it
		// for sparing a sort, but read in order it can walk most of the
		// table, where listed ids or request ids select a few events
		// through their own index.
		var c conds
		c.in("+type", f.Types)
		return []conds{c}
	}
	branches := make([]conds, len(f.Types))
	for i, t := range f.Types {
		branches[i].add("type = ?", t)
	}
	return branches
}

// idBranches returns the branches that find the listed ids of f: by the
// key (ts, id) of the events whose ids carry their time, at the times read
// from the ids, and by the index of the others' ids. Both branches find an
// event of the second kind whose time happens to be one of the ids';
// the UNION returns it once.
func idBranches(f store.EventFilter) []conds {
	var types conds
	types.in("+type", f.Types) // see branches
	var byKey, byIndex conds
	times := make([]any, 0, len(f.IDs))
	for _, id := range f.IDs {
		if ms, ok := ids.Millis(id); ok {
			times = append(times, ms)
		}
	}
	byIndex.add("ts_in_id = 0") // the index's own condition, so the planner uses it
	byIndex.in("id", f.IDs)
	byIndex.and(types)
	if len(times) == 0 {
		return []conds{byIndex}
	}
	byKey.add(inList("ts", len(times)), times...)
	byKey.in("id", f.IDs)
	byKey.and(types)
	return []conds{byKey, byIndex}
}

// DeleteEventsBefore deletes at most limit of the oldest events older
// than t. Each call is one short write transaction, so retention running
// in a loop lets other writers in between batches.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	// A negative LIMIT means no limit to SQLite.
	if limit < 1 {
		return 0, fmt.Errorf("sqlite: delete events: limit %d, want at least 1", limit)
	}
	var n int64
	err := s.write(ctx, "delete events", func(g *groupTx) error {
		res, err := g.execSQL(deleteOldEvents, rules.FromMillisecond(t).UnixMilli(), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// scanEvent reads one row selected with eventColumns.
func scanEvent(row interface{ Scan(...any) error }) (store.Event, error) {
	var (
		e  store.Event
		ts int64
	)
	if err := row.Scan(&e.ID, &ts, &e.Type, &e.Category, &e.RequestID, &e.ClientID, &e.Metadata); err != nil {
		return store.Event{}, err
	}
	e.Time = time.UnixMilli(ts).UTC()
	return e, nil
}

// conds is a conjunction of SQL conditions with their arguments.
type conds struct {
	sql  []string
	args []any
}

func (c *conds) add(cond string, args ...any) {
	c.sql = append(c.sql, cond)
	c.args = append(c.args, args...)
}

// in requires column to be one of values; no values, no condition.
func (c *conds) in(column string, values []string) {
	if len(values) > 0 {
		c.add(inList(column, len(values)), anys(values)...)
	}
}

// and adds every condition of other.
func (c *conds) and(other conds) {
	c.sql = append(c.sql, other.sql...)
	c.args = append(c.args, other.args...)
}

// where is the WHERE clause of c, or nothing when c is empty.
func (c conds) where() string {
	if len(c.sql) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.sql, " AND ")
}

// inList is "column IN (?, ...)" with n placeholders.
func inList(column string, n int) string {
	return column + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

func anys(values []string) []any {
	r := make([]any, len(values))
	for i, v := range values {
		r[i] = v
	}
	return r
}
