package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// writeStmt names a statement of the write path kept prepared.
type writeStmt int

const (
	stmtSavepoint writeStmt = iota
	stmtRelease
	stmtRollbackTo
	stmtUserExists
	stmtInsertUser
	stmtUpdateUser
	stmtDeleteUser
	stmtInsertEvent
	stmtInsertEventPair
	stmtInsertEventsFew // eventsPerFewInsert of them
	stmtInsertEvents    // eventsPerInsert of them
	numWriteStmts
)

// changes reports whether statement k may change rows (groupTx.dirty):
// all but the savepoints and the reads.
func (k writeStmt) changes() bool {
	switch k {
	case stmtSavepoint, stmtRelease, stmtRollbackTo, stmtUserExists:
		return false
	}
	return true
}

var writeSQL = [numWriteStmts]string{
	// One name serves every write of a group: each savepoint is
	// released before the next is opened.
	stmtSavepoint:  `SAVEPOINT one_write`,
	stmtRelease:    `RELEASE one_write`,
	stmtRollbackTo: `ROLLBACK TO one_write`,
	stmtUserExists: `SELECT 1 FROM users WHERE id = ?`,
	// The user writes are OR FAIL, where SQLite's default is OR ABORT:
	// a statement that may abort halfway, such as one that fires a
	// trigger (the claims index, 00004) or returns rows, keeps a journal
	// of every page it changes to undo them (7-9% of a create's CPU). A
	// constraint these statements break is found before they write
	// anything, so there is nothing to undo; any other failure may come
	// after a change, which the group then undoes (groupTx.failed).
	stmtInsertUser: `INSERT OR FAIL INTO users (id, claims, provider_id, provider_url, subject_id, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	// Arguments: claims or NULL to keep them; whether to set the provider,
	// and its three columns; updated_at or NULL to keep it; the id; the
	// version the user must have, or 0 for any.
	stmtUpdateUser: `UPDATE OR FAIL users SET
			claims = coalesce(?1, claims),
			provider_id = iif(?2, ?3, provider_id),
			provider_url = iif(?2, ?4, provider_url),
			subject_id = iif(?2, ?5, subject_id),
			updated_at = coalesce(?6, updated_at),
			version = version + 1
		WHERE id = ?7 AND ?8 IN (0, version)
		RETURNING ` + userColumns,
	// Arguments: the id; the version the user must have, or 0 for any.
	stmtDeleteUser:      `DELETE FROM users WHERE id = ?1 AND ?2 IN (0, version)`,
	stmtInsertEvent:     insertEventsSQL(1),
	stmtInsertEventPair: insertEventsSQL(2),
	stmtInsertEventsFew: insertEventsSQL(eventsPerFewInsert),
	stmtInsertEvents:    insertEventsSQL(eventsPerInsert),
}

// statements are the hot statements, prepared once per connection
// (database/sql prepares a *sql.Stmt again only on a connection that has
// not seen it), so SQLite parses their SQL once rather than on every call.
type statements struct {
	write     [numWriteStmts]*sql.Stmt // on the writer
	listUsers *sql.Stmt                // on the readers (GetUser has its own: lookup)
}

func prepareStatements(ctx context.Context, w, r *sql.DB) (statements, error) {
	var st statements
	for k, query := range writeSQL {
		stmt, err := w.PrepareContext(ctx, query)
		if err != nil {
			return statements{}, fmt.Errorf("sqlite: prepare %q: %w", query, err)
		}
		st.write[k] = stmt
	}
	stmt, err := r.PrepareContext(ctx, listUsers)
	if err != nil {
		return statements{}, fmt.Errorf("sqlite: prepare %q: %w", listUsers, err)
	}
	st.listUsers = stmt
	return st, nil
}
