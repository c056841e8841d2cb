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

// The lookup's connection has the readers' settings: it cannot write.
func TestLookupConnectionIsAReader(t *testing.T) {
	s := openTemp(t)
	for name, want := range map[string]string{
		"journal_mode": "wal", "query_only": "1", "secure_delete": "1", "foreign_keys": "1",
	} {
		if got := s.look.pragma(t, name); got != want {
			t.Errorf("lookup connection: %s = %s, want %s", name, got, want)
		}
	}
	s.look.mu.Lock()
	_, err := s.look.conn.(driver.ExecerContext).ExecContext(t.Context(), `DELETE FROM users`, nil)
	s.look.mu.Unlock()
	if err == nil {
		t.Error("a write on the lookup connection succeeded")
	}
}

// The lookup reads what the writer committed, a link included, and no
// more after a delete.
func TestLookupSeesCommits(t *testing.T) {
	s := openTemp(t)
	link := &store.ProviderLink{ProviderID: "p", URL: "https://idp.example", SubjectID: "s"}
	created, err := s.CreateUser(t.Context(), store.User{ID: "0190a5a0-0000-7000-8000-000000000001", Claims: `{"a":1}`, Provider: link}, nil)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.GetUser(t.Context(), created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.Seq != created.Seq || got.Claims != created.Claims || got.Version != 1 ||
		got.Provider == nil || *got.Provider != *link || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("GetUser = %+v, want %+v", got, created)
	}
	if err := s.DeleteUser(t.Context(), created.ID, 0, nil); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(t.Context(), created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after delete: %v, want ErrNotFound", err)
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
