// Package store defines the persistence port of usersd: the records the
// service keeps and the operations it needs, in the service's own terms.
// Implementations (internal/store/sqlite, internal/store/postgres) live in
// sub-packages; this package imports no protobuf and no driver.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them (fmt.Errorf("...: %w", ErrX))
// so callers test with errors.Is; anything else is an internal failure.
var (
	// ErrNotFound: no user has the given id.
	ErrNotFound = errors.New("store: not found")
	// ErrProviderLinkConflict: the (provider id, subject id) pair is
	// already linked to another user. Decided by the database's unique
	// index, never by a read-then-write.
	ErrProviderLinkConflict = errors.New("store: provider link already in use")
	// ErrUnavailable: the database cannot be written (or read) right now:
	// the disk is full, the file or its directory is read-only, the file
	// was removed, or it stayed locked past the busy timeout. Nothing of
	// the failed call was committed; the same call may succeed once the
	// fault clears, without a restart.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrVersionMismatch: the user exists but its version is not the one
	// the caller expected (UserChange.IfVersion, DeleteUser's ifVersion).
	// Nothing was written. Decided inside the write, never by a
	// read-then-write.
	ErrVersionMismatch = errors.New("store: version does not match")
)

// ProviderLink ties a user to an account at an external identity provider.
type ProviderLink struct {
	ProviderID string // canonical lower-case UUID
	URL        string
	SubjectID  string
}

// User is the stored form of a user.
type User struct {
	ID string // canonical lower-case UUID, assigned by the caller
	// Claims is a JSON object, e.g. `{}` or `{"a":1}`. A backend returns
	// the same JSON value it was given (the same keys, strings, numbers,
	// nesting), not necessarily the same bytes: PostgreSQL's jsonb
	// reorders keys and respaces. Equality is JSON equality. It is text,
	// not bytes, so that a read hands the driver's string on without a
	// copy, and the service decodes it without another (string values
	// and keys are slices of it).
	Claims   string
	Provider *ProviderLink // nil when not linked
	// Seq is the store-assigned creation sequence: strictly increasing in
	// creation order, never reused. It is the key of keyset pagination,
	// so a backend must make it visible in order: once a reader sees the
	// user with Seq n, no user with a smaller Seq may commit later (else
	// a cursor past n would skip it).
	Seq int64
	// Version is 1 on create and grows by one on every successful
	// UpdateUser (also one that changes nothing, so that of two updates
	// expecting one version exactly one succeeds). It is the user's ETag.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// UserChange describes an update. Only the parts whose Set flag is true
// are written; the rest of the user is left as it is.
type UserChange struct {
	SetClaims   bool
	Claims      []byte // canonical JSON object; required when SetClaims
	SetProvider bool
	Provider    *ProviderLink // nil with SetProvider unlinks
	// IfVersion, when not 0, is the version the user must have for the
	// update to apply; otherwise it fails with ErrVersionMismatch.
	IfVersion int64
}

// Event is one analytic event as stored. The store keeps the fields as
// given and never interprets Metadata.
type Event struct {
	ID        string    // UUIDv7, assigned by the caller
	Time      time.Time // UTC, millisecond precision
	Type      string    // e.g. USER_UPDATE_SUCCESS
	Category  string    // e.g. user
	RequestID string
	ClientID  string
	Metadata  []byte // compact JSON object: ids and counts only, never PII
}

// Event type suffixes: an operation records <OP>_START, then one outcome,
// <OP>_SUCCESS or <OP>_FAIL. A store may keep a START and its outcome
// together (the SQLite store does).
const (
	StartSuffix   = "_START"
	SuccessSuffix = "_SUCCESS"
	FailSuffix    = "_FAIL"
)

// EventPosition is a point in the newest-first order of events: by Time,
// then by ID, both descending.
type EventPosition struct {
	Time time.Time
	ID   string
}

// EventFilter selects events: every filter must hold. Empty lists and nil
// times do not filter. There is no category filter: the service records
// one category and decides that filter itself.
type EventFilter struct {
	IDs        []string
	RequestIDs []string
	Types      []string
	From, To   *time.Time // inclusive bounds on Time
	Limit      int
	// Before continues a listing: only events strictly after this
	// position in newest-first order (older ones) are returned.
	Before *EventPosition
}

// Criteria select users for SearchUsers; every one given must hold (AND),
// and the zero Criteria selects every user.
type Criteria struct {
	// Claims, when not nil, is a JSON object the user's claims must
	// contain: every key of it, with a matching value. Strings, numbers,
	// booleans and null match an equal value of the same JSON type (1
	// does not match "1"; 1 matches 1.0); objects match by containment,
	// recursively (an empty object matches any object); arrays match an
	// equal array (same elements in the same order). Keys are data: dots,
	// brackets, $ and quotes in them are matched literally.
	Claims []byte
	// Provider link criteria; "" does not constrain. Any subset may be
	// given.
	ProviderID, SubjectID, URL string
}

// BulkLoader is implemented by backends that can insert many users at
// once, for seeding a benchmark or an import: no events, no per-user
// transaction, every index kept exact. Users must have ID, Claims, and
// CreatedAt set; Seq and Version are assigned as by CreateUser.
type BulkLoader interface {
	LoadUsers(ctx context.Context, users []User) error
}

// Page asks for at most Limit users whose Seq is greater than AfterSeq,
// in ascending Seq order. AfterSeq 0 starts at the beginning.
type Page struct {
	Limit    int
	AfterSeq int64
}

// Store is what the service needs from a database. Every method is safe
// for concurrent use.
//
// Mutations take the trail of the call (its START and SUCCESS events) and
// write it in the same transaction as the change: both or neither. Events
// are written once by id, whichever path writes them first: the
// asynchronous writer's later copy of a START committed with its mutation
// is a no-op, and so is a mutation's copy of a START already written.
type Store interface {
	// CreateUser inserts u (ID, Claims, Provider set by the caller) and
	// returns it with Seq, CreatedAt and UpdatedAt filled in, writing
	// trail in the same transaction.
	CreateUser(ctx context.Context, u User, trail []Event) (User, error)
	// GetUser returns the user with the given id or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// UpdateUser applies the change in one transaction, increments the
	// version and returns the user as it is afterwards; ErrNotFound,
	// ErrProviderLinkConflict, ErrVersionMismatch (c.IfVersion). The
	// trail is written in the same transaction (also when the change is
	// empty).
	UpdateUser(ctx context.Context, id string, c UserChange, trail []Event) (User, error)
	// DeleteUser removes the user and everything stored about them, and
	// writes trail in the same transaction; ErrNotFound, and
	// ErrVersionMismatch when ifVersion is not 0 and not the user's
	// version.
	DeleteUser(ctx context.Context, id string, ifVersion int64, trail []Event) error
	// ListUsers returns one page in creation order. The page holds at
	// most p.Limit users; more reports whether any user follows it.
	ListUsers(ctx context.Context, p Page) (users []User, more bool, err error)
	// SearchUsers returns one page, in creation order, of the users that
	// match every criterion of c, like ListUsers. It reads an index, never
	// every user: see Criteria.
	SearchUsers(ctx context.Context, c Criteria, p Page) (users []User, more bool, err error)
	// AppendEvents writes events in one transaction, skipping those
	// whose id is already stored.
	AppendEvents(ctx context.Context, events []Event) error
	// ListEvents returns at most f.Limit events newest first (Time, then
	// ID, descending); more reports whether any further event matches.
	ListEvents(ctx context.Context, f EventFilter) (events []Event, more bool, err error)
	// DeleteEventsBefore deletes at most limit events older than t (the
	// SQLite store: limit rows, a row holding one or two events) and
	// returns how many events it deleted (retention works in small
	// batches).
	// Backends shared by several instances let one instance at a time do
	// it; the others delete nothing (0, nil).
	DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int, error)
	// CursorKey returns the secret that signs pagination cursors. It is
	// created once per database, so every instance sharing the database
	// accepts the cursors the others issued.
	CursorKey(ctx context.Context) ([]byte, error)
	// Ping reports whether the database can be read and written
	// (readiness): it reads, and commits a small write. ErrUnavailable
	// when it cannot be written.
	Ping(ctx context.Context) error
	// Close flushes what the backend buffers (SQLite: checkpoints and
	// truncates the WAL so no deleted data lingers in it) and releases
	// every resource, giving up the flush when ctx ends. Call it once,
	// after the last request has finished.
	Close(ctx context.Context) error
}
