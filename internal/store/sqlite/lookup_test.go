package sqlite

import (
	"database/sql/driver"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/store"
)

// pragma reads one PRAGMA on the lookup's connection.
func (l *lookup) pragma(t *testing.T, name string) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, err := l.conn.(driver.QueryerContext).QueryContext(t.Context(), "PRAGMA "+name, nil)
	if err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	switch x := v[0].(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	t.Fatalf("PRAGMA %s: value %#v", name, v[0])
	return ""
}

// The lookup's connection cannot write (its settings are checked with the
// pools' in TestPragmasOnPooledConnections; GetUser, which it serves, is
// in the store conformance suite).
func TestLookupConnectionRefusesWrites(t *testing.T) {
	s := openTemp(t)
	s.look.mu.Lock()
	_, err := s.look.conn.(driver.ExecerContext).ExecContext(t.Context(), `DELETE FROM users`, nil)
	s.look.mu.Unlock()
	if err == nil {
		t.Error("a write on the lookup connection succeeded")
	}
}

func TestUserFromRow(t *testing.T) {
	ms := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMilli()
	row := func(edit func(r *[9]driver.Value)) *[9]driver.Value {
		r := &[9]driver.Value{int64(7), "id", `{}`, nil, nil, nil, int64(3), ms, ms + 1}
		if edit != nil {
			edit(r)
		}
		return r
	}
	u, err := userFromRow(row(nil))
	if err != nil || u.Seq != 7 || u.ID != "id" || u.Version != 3 || u.Provider != nil ||
		u.CreatedAt.UnixMilli() != ms || u.UpdatedAt.UnixMilli() != ms+1 || u.CreatedAt.Location() != time.UTC {
		t.Errorf("unlinked row: %+v, %v", u, err)
	}
	u, err = userFromRow(row(func(r *[9]driver.Value) { r[3], r[4], r[5] = "p", "u", "s" }))
	if err != nil || u.Provider == nil || *u.Provider != (store.ProviderLink{ProviderID: "p", URL: "u", SubjectID: "s"}) {
		t.Errorf("linked row: %+v, %v", u, err)
	}
	for name, edit := range map[string]func(r *[9]driver.Value){
		"seq as text":           func(r *[9]driver.Value) { r[0] = "7" },
		"claims as blob":        func(r *[9]driver.Value) { r[2] = []byte(`{}`) },
		"null created_at":       func(r *[9]driver.Value) { r[7] = nil },
		"provider url as int64": func(r *[9]driver.Value) { r[3], r[4], r[5] = "p", int64(1), "s" },
	} {
		if _, err := userFromRow(row(edit)); !errors.Is(err, errRowTypes) {
			t.Errorf("%s: err = %v, want errRowTypes", name, err)
		}
	}
}
