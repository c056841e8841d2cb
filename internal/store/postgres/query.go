package postgres

import (
	"strconv"
	"strings"
)

// The listings' queries (events, searches) are built from the conditions
// given: every value a parameter, never SQL text.

// query collects the arguments of a query being built.
type query struct{ args []any }

// arg adds v to the arguments and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// where is the WHERE clause of conds, or nothing when there are none.
func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
