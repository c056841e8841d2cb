package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

const (
	eventColumns = `id, ts, type, category, request_id, client_id, metadata`
	// outcomeColumns are those of the outcome stored in its START's row;
	// outcome_type is '' in a row of one event.
	outcomeColumns = `outcome_id, outcome_type, outcome_metadata`
	newestFirst    = ` ORDER BY ts DESC, id DESC`

	// deleteOldEvents deletes the oldest events before a time, a bounded
	// number at a time: SQLite has no DELETE ... LIMIT in its default
	// build, so the subquery picks the keys, oldest first, from the
	// table's own (ts, id) order.
	deleteOldEvents = `DELETE FROM events WHERE (ts, id) IN (SELECT ts, id ` + oldestRows + `)`
	// countOldEvents counts the events in the rows deleteOldEvents deletes.
	countOldEvents = `SELECT count(*) + count(NULLIF(outcome_type, '')) FROM (SELECT outcome_type ` + oldestRows + `)`
	// oldestRows picks the rows of both, the oldest before a time.
	oldestRows = `FROM events WHERE ts < ? ORDER BY ts, id LIMIT ?`

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
// events holds id, so both skip exactly the rows whose id is stored. But
// SQLite keeps a statement journal for a statement of several rows that
// may abort halfway, to undo its earlier rows, in memory here
// (temp_store): with the upsert, that was 1.4-1.9 MB more peak memory
// (docs/performance.md), and journal writes on every
// statement. With OR IGNORE, which resolves every row's conflict itself,
// memory stays as with one row a statement.
func insertEventsSQL(rows int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	return `INSERT OR IGNORE INTO events (` + eventColumns + `, ts_in_id, ` + outcomeColumns + `) VALUES ` + row +
		strings.Repeat(`, `+row, rows-1)
}

// AppendEvents writes events in one transaction: the batch is stored
// whole or not at all. Events whose id is stored already are skipped,
// found by (time, id) when the id carries the time and by id otherwise:
// an id written once with the time it carries and once with another would
// be stored twice. The service never does that: an event's time is its
// id's, and its second write is a copy.
//
// A START and its outcome in the batch share a row (pairOutcomes). When
// the START is stored already, alone, the outcome is stored alone too
// (storeSkippedOutcomes). A mutation's trail is stored the same way
// (runGroup): its START and SUCCESS in one row, or its SUCCESS alone when
// the writer stored the START first; a START the writer brings after the
// trail is skipped.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows, outcomes := pairOutcomes(events)
	return s.write(ctx, "append events", func(g *groupTx) error {
		return insertEvents(g, rows, outcomes)
	})
}

// pairOutcomes returns the rows of events: each event alone, except a
// START followed in events by its outcome, which is stored in the START's
// row (outcomes[i] is the outcome of rows[i], or nil). An outcome pairs
// when its id is the START's successor (ids.Next), so that no event sorts
// between them, and when it shares the START's time, category, request,
// client and operation: the row then holds both events exactly.
func pairOutcomes(events []store.Event) (rows []store.Event, outcomes []*store.Event) {
	rows = make([]store.Event, 0, len(events))
	outcomes = make([]*store.Event, 0, len(events))
	starts := make(map[string]int) // the successor of a START's id: its row
	for i := range events {
		e := &events[i]
		if r, ok := starts[e.ID]; ok && isOutcomeOf(e, &rows[r]) {
			outcomes[r] = e
			delete(starts, e.ID)
			continue
		}
		if strings.HasSuffix(e.Type, store.StartSuffix) && tsInID(e.ID, e.Time.UnixMilli()) {
			if next, ok := ids.Next(e.ID); ok {
				if _, twice := starts[next]; !twice { // the first copy's row takes it
					starts[next] = len(rows)
				}
			}
		}
		rows = append(rows, *e)
		outcomes = append(outcomes, nil)
	}
	return rows, outcomes
}

// isOutcomeOf reports whether o, whose id is the successor of start's,
// is start's outcome as one row can hold it.
func isOutcomeOf(o, start *store.Event) bool {
	op, ok := outcomeOp(o.Type)
	return ok && start.Type == op+store.StartSuffix && o.Time.Equal(start.Time) &&
		o.Category == start.Category && o.RequestID == start.RequestID && o.ClientID == start.ClientID
}

// outcomeOp returns the operation of an outcome type (<OP>_SUCCESS or
// <OP>_FAIL), and false for any other type.
func outcomeOp(typ string) (string, bool) {
	if op, ok := strings.CutSuffix(typ, store.SuccessSuffix); ok {
		return op, true
	}
	return strings.CutSuffix(typ, store.FailSuffix)
}

// insertEvents inserts events within g, outcomes[i] (if outcomes is not
// nil) in the row of events[i]. Mutations and AppendEvents share it, so
// every event is stored the same way whichever path wrote it.
// Several rows go to a statement, so the cost of running one (database/sql's
// call, starting and halting the program) is shared: BenchmarkAppendEvents,
// 7.8-8.2 µs an event one to a statement, 5.8-6.2 with 32 (64 gained
// nothing more). The writer's batches hold hundreds under load; the
// trails of a group's writes, two events each, go together (runGroup),
// a pair when a write runs in a savepoint.
func insertEvents(g *groupTx, events []store.Event, outcomes []*store.Event) error {
	args := make([]any, 0, 11*min(len(events), eventInserts[0].rows))
	for len(events) > 0 {
		i := 0
		for eventInserts[i].rows > len(events) {
			i++
		}
		ins := eventInserts[i]
		args = args[:0]
		for j, e := range events[:ins.rows] {
			ts := e.Time.UnixMilli()
			args = append(args, e.ID, ts, e.Type, e.Category,
				e.RequestID, e.ClientID, string(e.Metadata), tsInID(e.ID, ts))
			if outcomes != nil && outcomes[j] != nil {
				o := outcomes[j]
				args = append(args, o.ID, o.Type, string(o.Metadata))
			} else {
				args = append(args, nil, "", nil)
			}
		}
		res, err := g.exec(ins.stmt, args...)
		if err != nil {
			return fmt.Errorf("insert events from %s: %w", events[0].ID, err)
		}
		if outcomes != nil {
			if n, err := res.RowsAffected(); err != nil || n < int64(ins.rows) {
				if err := storeSkippedOutcomes(g, events[:ins.rows], outcomes[:ins.rows]); err != nil {
					return err
				}
			}
		}
		events = events[ins.rows:]
		if outcomes != nil {
			outcomes = outcomes[ins.rows:]
		}
	}
	return nil
}

// storeSkippedOutcomes stores alone each outcome of outcomes whose
// START's row was skipped, the START being stored already without it:
// AppendEvents given an event it has stored (a retried batch, a START
// written once alone) still stores every event, once.
func storeSkippedOutcomes(g *groupTx, starts []store.Event, outcomes []*store.Event) error {
	for i, o := range outcomes {
		if o == nil {
			continue
		}
		var stored sql.NullString
		if err := g.queryRowSQL(`SELECT outcome_id FROM events WHERE ts = ? AND id = ?`,
			starts[i].Time.UnixMilli(), starts[i].ID).Scan(&stored); err != nil {
			return fmt.Errorf("look up the row of event %s: %w", starts[i].ID, err)
		}
		if stored.String == o.ID {
			continue
		}
		if err := insertEvents(g, []store.Event{*o}, nil); err != nil {
			return err
		}
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
// reads rows until it has one event more than the page, to learn whether
// another follows. A row holds one or two events (pairOutcomes), and the
// query selects a row when either matches, so it checks each (matches).
// Nearly every row it reads gives at least one; when some give none (the
// one holding the previous page's last event, or a pair whose listed id
// or type is the other event's), it reads on after the last row.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, bool, error) {
	if f.Limit < 0 {
		return nil, false, fmt.Errorf("sqlite: list events: negative limit %d", f.Limit)
	}
	var events []store.Event
	q := f
	for {
		want := f.Limit + 1 - len(events)
		read, last, err := s.listRows(ctx, q, want, func(e store.Event) {
			if matches(f, e) {
				events = append(events, e)
			}
		})
		if err != nil {
			return nil, false, opError("list events", err)
		}
		if read < want || len(events) > f.Limit {
			break
		}
		q.Before = &last
	}
	if len(events) > f.Limit {
		return events[:f.Limit], true, nil
	}
	return events, false, nil
}

// listRows reads up to limit rows of the listing of f, newest first, and
// gives each of their events to add, newest first. It returns how many
// rows it read and the position of the last one.
func (s *Store) listRows(ctx context.Context, f store.EventFilter, limit int, add func(store.Event)) (int, store.EventPosition, error) {
	query, args := eventsQuery(f, limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, store.EventPosition{}, err
	}
	defer rows.Close()
	var (
		read int
		last store.EventPosition
	)
	for rows.Next() {
		e, outcome, err := scanEventRow(rows)
		if err != nil {
			return 0, store.EventPosition{}, err
		}
		read++
		last = store.EventPosition{Time: e.Time, ID: e.ID}
		if outcome != nil {
			add(*outcome) // the newer of the two
		}
		add(e)
	}
	return read, last, rows.Err()
}

// matches reports whether f selects e, an event of a row the query
// selected: the query checks the rest of f exactly.
func matches(f store.EventFilter, e store.Event) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(len(f.IDs) == 0 || slices.Contains(f.IDs, e.ID)) &&
		(f.Before == nil || e.Time.UnixMilli() < f.Before.Time.UnixMilli() ||
			e.Time.UnixMilli() == f.Before.Time.UnixMilli() && e.ID < f.Before.ID)
}

// eventsQuery builds the listing of the rows f selects, limited to limit
// rows.
//
// Types are matched by one SELECT per listed type and kind of row
// (typeBranches), combined with UNION under the outer ORDER BY. Each
// branch is an equality on the type index's leading (type, outcome_type),
// which ends in (ts, id), so SQLite merges the branches' ordered streams,
// drops a row that two branches both return, and stops after the page;
// the index being UNIQUE is what spares that merge a sort (see the
// migrations). A single SELECT with "type IN (..)" would collect every
// matching row and sort them: the whole table when it names a common
// type.
//
// Listed request ids select a few events through their own index, so
// then one SELECT filters and sorts those instead. So do listed ids, in
// two branches: the events whose id carries their time are found by their
// key, the times read from the ids, and the others by the index of their
// ids (see the migrations).
func eventsQuery(f store.EventFilter, limit int) (string, []any) {
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
		b.WriteString(`SELECT ` + eventColumns + `, ` + outcomeColumns + ` FROM events` + branch.where())
		args = append(args, branch.args...)
	}
	b.WriteString(newestFirst + ` LIMIT ?`)
	return b.String(), append(args, limit)
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
// per listed type and kind of row holding it (typeBranches), whose union
// is the Types filter; or, when ids are listed, the two ways to find them
// (idBranches). It returns a single branch when there is neither filter,
// when request ids narrow the listing, or past maxBranches types (correct,
// only slower).
func branches(f store.EventFilter) []conds {
	switch {
	case len(f.IDs) > 0:
		return idBranches(f)
	case len(f.Types) == 0:
		return []conds{{}}
	case len(f.RequestIDs) > 0 || len(f.Types) > maxBranches:
		return []conds{anyType(f.Types)}
	}
	var branches []conds
	for _, t := range f.Types {
		branches = append(branches, typeBranches(t)...)
	}
	return branches
}

// typeBranches returns the conditions of the rows holding events of type
// t, each an equality range of the type index: the STARTs of an operation
// are alone or with either outcome; an outcome is alone or in its START's
// row.
func typeBranches(t string) []conds {
	rows := func(typ, outcome string) conds {
		var c conds
		c.add("type = ? AND outcome_type = ?", typ, outcome)
		return c
	}
	if op, ok := strings.CutSuffix(t, store.StartSuffix); ok {
		return []conds{rows(t, ""), rows(t, op+store.SuccessSuffix), rows(t, op+store.FailSuffix)}
	}
	if op, ok := outcomeOp(t); ok {
		return []conds{rows(t, ""), rows(op+store.StartSuffix, t)}
	}
	return []conds{rows(t, "")}
}

// anyType is the condition of the rows holding an event of one of types,
// off the type index: the unary + keeps the planner from it, which it
// likes for sparing a sort, but read in order it can walk most of the
// table, where listed ids or request ids select a few events through
// their own index.
func anyType(types []string) conds {
	var c conds
	if len(types) > 0 {
		c.add("("+inList("+type", len(types))+" OR "+inList("outcome_type", len(types))+")",
			append(anys(types), anys(types)...)...)
	}
	return c
}

// idBranches returns the branches that find the listed ids of f: by the
// key (ts, id) of the rows whose ids carry their time, at the times read
// from the ids, and by the index of the others' ids. Both branches find an
// event of the second kind whose time happens to be one of the ids';
// the UNION returns it once. An outcome stored in its START's row is
// found by that row's key, the START's id being the outcome's ids.Prev;
// ListEvents drops the START when it is not listed too.
func idBranches(f store.EventFilter) []conds {
	types := anyType(f.Types)
	var byKey, byIndex conds
	times := make([]any, 0, len(f.IDs))
	keys := make([]string, 0, 2*len(f.IDs))
	for _, id := range f.IDs {
		if ms, ok := ids.Millis(id); ok {
			times = append(times, ms)
			keys = append(keys, id)
			if prev, ok := ids.Prev(id); ok {
				keys = append(keys, prev)
			}
		}
	}
	byIndex.add("ts_in_id = 0") // the index's own condition, so the planner uses it
	byIndex.in("id", f.IDs)
	byIndex.and(types)
	if len(times) == 0 {
		return []conds{byIndex}
	}
	byKey.add(inList("ts", len(times)), times...)
	byKey.in("id", keys)
	byKey.and(types)
	return []conds{byKey, byIndex}
}

// DeleteEventsBefore deletes the oldest rows of events older than t, at
// most limit rows, and returns how many events they held: a row holding
// a START and its outcome counts two. Each call is one short write
// transaction, so retention running in a loop lets other writers in
// between batches.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	// A negative LIMIT means no limit to SQLite.
	if limit < 1 {
		return 0, fmt.Errorf("sqlite: delete events: limit %d, want at least 1", limit)
	}
	before := rules.FromMillisecond(t).UnixMilli()
	var n int
	err := s.write(ctx, "delete events", func(g *groupTx) error {
		if err := g.queryRowSQL(countOldEvents, before, limit).Scan(&n); err != nil {
			return err
		}
		_, err := g.execSQL(deleteOldEvents, before, limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// scanEventRow reads one row selected with eventColumns and
// outcomeColumns: its event, and the outcome stored with it, if any.
func scanEventRow(row interface{ Scan(...any) error }) (store.Event, *store.Event, error) {
	var (
		e           store.Event
		ts          int64
		outcomeID   sql.NullString
		outcomeType string
		outcomeMeta []byte
	)
	if err := row.Scan(&e.ID, &ts, &e.Type, &e.Category, &e.RequestID, &e.ClientID, &e.Metadata,
		&outcomeID, &outcomeType, &outcomeMeta); err != nil {
		return store.Event{}, nil, err
	}
	e.Time = time.UnixMilli(ts).UTC()
	if outcomeType == "" {
		return e, nil, nil
	}
	o := e
	o.ID, o.Type, o.Metadata = outcomeID.String, outcomeType, outcomeMeta
	return e, &o, nil
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
