// Package events records analytic events: every users operation emits
// <OP>_START, then exactly one of <OP>_SUCCESS or <OP>_FAIL. The SUCCESS of
// a mutation is written by the store in the mutation's own transaction;
// every other event goes through a bounded, batched asynchronous writer.
// Metadata carries ids and counts only, never claims or tokens.
package events

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/store"
)

// CategoryUser is the category of users operations.
const CategoryUser = "user"

// Event type suffixes.
const (
	Start   = "_START"
	Success = "_SUCCESS"
	Fail    = "_FAIL"
)

// Metadata keys (ids and counts only).
const (
	KeyUserID       = "userId"
	KeyLimit        = "limit"
	KeyEntriesCount = "entriesCount"
	KeyCode         = "code"
)

// call is the event state of one RPC, shared between the interceptor and
// the handler through the context.
type call struct {
	op        string // e.g. USER_UPDATE
	requestID string
	clientID  string
	metadata  map[string]any
	start     store.Event // as queued, so a mutation can commit it too
	// inTransaction: the handler took the trail to commit with its
	// change, so the interceptor must not record another SUCCESS.
	inTransaction bool
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// Set adds an id or a count to the metadata of the current call's events
// (no-op when the call records no events). Never pass personal data.
func Set(ctx context.Context, key string, value any) {
	if c := callFrom(ctx); c != nil {
		c.metadata[key] = value
	}
}

// TrailInTransaction returns the trail of the current call for the store
// to write in the same transaction as its change: the START (a copy of
// the one queued, same id, so whichever write comes second is a no-op) and
// the SUCCESS with the id of the user changed. It is nil when the call
// records no events. Once taken, the interceptor leaves SUCCESS to the
// store: the handler must return no error after the store committed.
//
// Committing the START too means no crash can leave a SUCCESS without its
// START, as it could while that START waited in the writer's buffer.
func TrailInTransaction(ctx context.Context, userID string) []store.Event {
	c := callFrom(ctx)
	if c == nil {
		return nil
	}
	c.inTransaction = true
	meta := maps.Clone(c.metadata)
	meta[KeyUserID] = userID
	return []store.Event{c.start, c.event(Success, meta)}
}

// event builds one event of the call from its metadata as it is now.
func (c *call) event(suffix string, metadata map[string]any) store.Event {
	return newEvent(c.op+suffix, c.requestID, c.clientID, metadata, time.Now())
}

func newEvent(typ, requestID, clientID string, metadata map[string]any, now time.Time) store.Event {
	meta, err := json.Marshal(metadata) // a snapshot: later Sets do not change it
	if err != nil || metadata == nil {
		meta = []byte("{}") // metadata holds strings and numbers only
	}
	return store.Event{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Time:      now.UTC().Truncate(time.Millisecond),
		Type:      typ,
		Category:  CategoryUser,
		RequestID: requestID,
		ClientID:  clientID,
		Metadata:  meta,
	}
}
