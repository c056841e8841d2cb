// Package events records analytic events: every users operation emits
// <OP>_START, then exactly one of <OP>_SUCCESS or <OP>_FAIL. The SUCCESS of
// a mutation is written by the store in the mutation's own transaction;
// every other event goes through a bounded, batched asynchronous writer.
// Metadata carries ids and counts only, never claims or tokens.
package events

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/store"
)

// CategoryUser is the category of users operations.
const CategoryUser = "user"

// Event type suffixes.
const (
	Start   = store.StartSuffix
	Success = store.SuccessSuffix
	Fail    = store.FailSuffix
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
	types     *eventTypes
	requestID string
	clientID  string
	metadata  metadata
	start     store.Event // as queued, so a mutation can commit it too
	outcome   store.Event // the SUCCESS or FAIL queued after the handler
	// inTransaction: the handler took the trail to commit with its
	// change, so the interceptor must not record another SUCCESS.
	inTransaction bool
}

// metadata is what an event's metadata can hold: ids and counts only, so
// no claim or token can slip in. A string is set when not empty.
type metadata struct {
	code         string // of a FAIL
	entriesCount int
	hasEntries   bool
	limit        int
	hasLimit     bool
	userID       string
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// SetUserID names the user of the current call's events (no-op when the
// call records no events).
func SetUserID(ctx context.Context, id string) {
	if c := callFrom(ctx); c != nil {
		c.metadata.userID = id
	}
}

// SetLimit records the page size of the current call's events.
func SetLimit(ctx context.Context, n int) {
	if c := callFrom(ctx); c != nil {
		c.metadata.limit, c.metadata.hasLimit = n, true
	}
}

// SetEntriesCount records how many entries the current call returned.
func SetEntriesCount(ctx context.Context, n int) {
	if c := callFrom(ctx); c != nil {
		c.metadata.entriesCount, c.metadata.hasEntries = n, true
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
	meta := c.metadata
	meta.userID = userID
	return []store.Event{c.start, c.outcomeEvent(c.types.success, meta)}
}

// outcomeEvent builds the SUCCESS or FAIL of the call. Within START's
// millisecond its id is START's successor (ids.Next), which no other
// event can sort between: the SQLite store keeps the two in one row (see
// its AppendEvents). Later, it is an event of its own time.
func (c *call) outcomeEvent(typ string, meta metadata) store.Event {
	if time.Now().UnixMilli() == c.start.Time.UnixMilli() {
		if id, ok := ids.Next(c.start.ID); ok {
			e := c.start
			e.ID, e.Type, e.Metadata = id, typ, meta.json()
			return e
		}
	}
	return c.event(typ, meta)
}

// event builds one event of the call from its metadata as it is now.
func (c *call) event(typ string, meta metadata) store.Event {
	return newEvent(typ, c.requestID, c.clientID, meta)
}

// newEvent returns an event happening now. Its time is the millisecond
// its id carries: the SQLite store finds an event by id through its
// (time, id) key then, without an index of ids to write for every event.
func newEvent(typ, requestID, clientID string, meta metadata) store.Event {
	id, ms := ids.NewV7Millis()
	return store.Event{
		ID:        id,
		Time:      time.UnixMilli(ms).UTC(),
		Type:      typ,
		Category:  CategoryUser,
		RequestID: requestID,
		ClientID:  clientID,
		Metadata:  meta.json(),
	}
}

// json is m as an event stores it (appendJSON), in a buffer that fits the
// usual few fields.
func (m metadata) json() []byte {
	return m.appendJSON(make([]byte, 0, 64))
}

// appendJSON appends the JSON encoding/json gives a map of the fields set
// (keys sorted, HTML-safe strings), without its reflection and sorting:
// events are written on every call.
func (m metadata) appendJSON(b []byte) []byte {
	b = append(b, '{')
	field := func(key string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
	}
	if m.code != "" {
		field(KeyCode)
		b = appendJSONString(b, m.code)
	}
	if m.hasEntries {
		field(KeyEntriesCount)
		b = strconv.AppendInt(b, int64(m.entriesCount), 10)
	}
	if m.hasLimit {
		field(KeyLimit)
		b = strconv.AppendInt(b, int64(m.limit), 10)
	}
	if m.userID != "" {
		field(KeyUserID)
		b = appendJSONString(b, m.userID)
	}
	return append(b, '}')
}

// appendJSONString quotes s as encoding/json does; ids and code words
// need no escaping, anything else is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
