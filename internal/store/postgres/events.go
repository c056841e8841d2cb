package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

const (
	eventColumns = `id, ts, type, category, request_id, client_id, metadata`
	// insertEvents writes a batch of events in one statement, each once:
	// the START of a mutation is written both with the mutation and by the
	// asynchronous writer, and whichever comes second is a no-op.
	insertEvents = `INSERT INTO events (` + eventColumns + `)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
		ON CONFLICT (id) DO NOTHING`
	newestFirst = ` ORDER BY ts DESC, id DESC`

	// deleteOldEvents deletes the oldest events before a time, a bounded
	// number at a time (PostgreSQL has no DELETE ... LIMIT): the subquery
	// picks them, oldest first, from events_ts.
	deleteOldEvents = `DELETE FROM events WHERE id IN (
		SELECT id FROM events WHERE ts < $1 ORDER BY ts, id LIMIT $2 FOR UPDATE SKIP LOCKED)`
	tryLockRetention = `SELECT pg_try_advisory_xact_lock($1)`
)

// AppendEvents writes events in one statement, so in one transaction: the
// batch is stored whole or not at all. Events whose id is stored already
// are skipped.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	args := eventArgs(events)
	return s.retry(ctx, "append events", func() error {
		_, err := s.pool.Exec(ctx, insertEvents, args...)
		return err
	})
}

// queueEvents queues the insert of events into b, a mutation's batch.
// Mutations and AppendEvents share the statement, so every event is stored
// the same way whichever path wrote it.
func queueEvents(b *pgx.Batch, events []store.Event) {
	if len(events) > 0 {
		b.Queue(insertEvents, eventArgs(events)...)
	}
}

// eventArgs are the arguments of insertEvents: one array per column, in
// the order of ids. An insert that meets an id another transaction has
// inserted but not committed waits for it; taking ids in one order keeps
// two batches that share ids from waiting for each other.
func eventArgs(events []store.Event) []any {
	events = slices.SortedFunc(slices.Values(events), func(a, b store.Event) int { return cmp.Compare(a.ID, b.ID) })
	n := len(events)
	ids, types, categories := make([]string, n), make([]string, n), make([]string, n)
	requests, clients, metadata := make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	for i, e := range events {
		ids[i], types[i], categories[i], requests[i], clients[i], metadata[i] =
			e.ID, e.Type, e.Category, e.RequestID, e.ClientID, string(e.Metadata)
		times[i] = rules.ToMillisecond(e.Time) // as SQLite keeps them: whole milliseconds
	}
	return []any{ids, times, types, categories, requests, clients, metadata}
}

// ListEvents returns up to f.Limit events matching f, newest first. It
// asks for one row more than the page to learn whether another follows.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, bool, error) {
	if f.Limit < 0 {
		return nil, false, fmt.Errorf("postgres: list events: negative limit %d", f.Limit)
	}
	query, args := eventsQuery(f)
	var events []store.Event
	err := s.retry(ctx, "list events", func() error {
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, scanEvent)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if len(events) > f.Limit {
		return events[:f.Limit], true, nil
	}
	return events, false, nil
}

// eventsQuery builds the listing of f, limited to f.Limit+1 rows.
//
// Types are matched by one LATERAL subquery per listed type, which reads
// that type's index (ending in (ts, id)) backwards from the Before
// position and stops after f.Limit+1 rows, and the outer query orders at
// most (types × (f.Limit+1)) rows: the work is bounded by the page, not by
// how many events match. A single SELECT with "type = ANY (..)" would
// leave the planner to choose between walking the whole (ts, id) index
// and sorting every matching event.
//
// Listed ids or request ids select a few events through their own index,
// so then one SELECT filters and sorts those instead.
func eventsQuery(f store.EventFilter) (string, []any) {
	var q query
	limit := q.arg(f.Limit + 1)
	common := commonConds(&q, f)
	if len(f.Types) == 0 || len(f.IDs) > 0 || len(f.RequestIDs) > 0 {
		conds := common
		if len(f.Types) > 0 {
			conds = append(conds, "type = ANY ("+q.arg(f.Types)+")")
		}
		return `SELECT ` + eventColumns + ` FROM events` + where(conds) + newestFirst + ` LIMIT ` + limit, q.args
	}
	conds := append([]string{"type = k.v"}, common...)
	// DISTINCT: a type listed twice is still read once.
	return `SELECT ` + eventColumns + ` FROM (SELECT DISTINCT unnest(` + q.arg(f.Types) + `::text[])) AS k(v)
		CROSS JOIN LATERAL (SELECT ` + eventColumns + ` FROM events` + where(conds) + newestFirst + ` LIMIT ` + limit + `) AS e` +
		newestFirst + ` LIMIT ` + limit, q.args
}

// commonConds are the conditions of f that every branch applies.
func commonConds(q *query, f store.EventFilter) []string {
	var c []string
	if len(f.IDs) > 0 {
		c = append(c, "id = ANY ("+q.arg(f.IDs)+")")
	}
	if len(f.RequestIDs) > 0 {
		c = append(c, "request_id = ANY ("+q.arg(f.RequestIDs)+")")
	}
	if f.From != nil {
		c = append(c, "ts >= "+q.arg(rules.FromMillisecond(*f.From)))
	}
	// Before and To both bound ts from above, and an index range uses
	// only one of them: keep the one that implies the other, so that a
	// page deep into a listing with To starts reading at its position,
	// not at To. Before comes from a listed event: a whole millisecond.
	switch before := f.Before; {
	case before != nil && (f.To == nil || !rules.ToMillisecond(before.Time).After(rules.ToMillisecond(*f.To))):
		c = append(c, "(ts, id) < ("+q.arg(rules.ToMillisecond(before.Time))+", "+q.arg(before.ID)+")")
	case f.To != nil:
		c = append(c, "ts <= "+q.arg(rules.ToMillisecond(*f.To)))
	}
	return c
}

// DeleteEventsBefore deletes at most limit of the oldest events older
// than t, when no other instance is doing the same: then it deletes
// nothing and returns (0, nil). Each call is one short transaction, so
// retention running in a loop lets other writers in between batches.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("postgres: delete events: limit %d, want at least 1", limit)
	}
	var n int64
	err := s.inTx(ctx, "delete events", readWrite, func(tx pgx.Tx) error {
		n = 0
		var mine bool
		if err := tx.QueryRow(ctx, tryLockRetention, lockRetention).Scan(&mine); err != nil || !mine {
			return err
		}
		tag, err := tx.Exec(ctx, deleteOldEvents, rules.FromMillisecond(t), limit)
		n = tag.RowsAffected()
		return err
	})
	return int(n), err
}

// scanEvent reads one row selected with eventColumns.
func scanEvent(row pgx.CollectableRow) (store.Event, error) {
	var e store.Event
	if err := row.Scan(&e.ID, &e.Time, &e.Type, &e.Category, &e.RequestID, &e.ClientID, &e.Metadata); err != nil {
		return store.Event{}, err
	}
	e.Time = e.Time.UTC()
	return e, nil
}
