// Package claimsjson carries users' claims from the service to the REST
// gateway as the JSON text the gateway writes, when the gateway calls the
// service in process (internal/gatewayconn runs the call in the gateway's
// own context, which is how Texts gets there). The store keeps claims as
// JSON: decoding that into a Struct only for the gateway to encode it
// again was a quarter of a REST list page's CPU.
//
// The gateway puts a Source of Texts in a request's context; the service
// adds a user's claims to its Texts instead of setting the user's Claims;
// the gateway's renderer writes them from there. A network call cannot
// carry a Go value in its context, so its users always have their Claims
// set.
package claimsjson

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// Texts holds the claims of the users of one response as JSON text, in
// one buffer. It serves one request, on one goroutine at a time.
type Texts struct {
	buf   []byte
	users []entry
	next  int // where Of looks first: users are rendered in the order added
}

type entry struct {
	user       *usersv1.User
	start, end int
}

// A Source gives one request's Texts when the service asks for them.
// A *Texts is its own Source; the gateway's takes its Texts from a pool
// only then, once the response's users are at hand, so that a request
// still waiting for the database holds no buffer.
type Source interface {
	Texts() *Texts
}

// Texts returns t.
func (t *Texts) Texts() *Texts { return t }

type textsKey struct{}

// NewContext returns ctx carrying s.
func NewContext(ctx context.Context, s Source) context.Context {
	return context.WithValue(ctx, textsKey{}, s)
}

// SourceFromContext returns the Source in ctx, or nil.
func SourceFromContext(ctx context.Context) Source {
	s, _ := ctx.Value(textsKey{}).(Source)
	return s
}

// FromContext returns the Texts of the Source in ctx, or nil.
func FromContext(ctx context.Context) *Texts {
	if s := SourceFromContext(ctx); s != nil {
		return s.Texts()
	}
	return nil
}

// Add keeps stored, a user's claims as the store holds them, as u's
// claims in the form the gateway writes (protojson's, compact). ok is false
// when Add cannot vouch for that form (see appendAPIForm): the caller then
// sets u.Claims, as without Texts.
func (t *Texts) Add(u *usersv1.User, stored string) (ok bool) {
	start := len(t.buf)
	t.buf, ok = appendAPIForm(t.buf, stored)
	if !ok {
		t.buf = t.buf[:start]
		return false
	}
	t.users = append(t.users, entry{user: u, start: start, end: len(t.buf)})
	return true
}

// Of returns the claims kept for u, if any. A nil Texts has none.
func (t *Texts) Of(u *usersv1.User) ([]byte, bool) {
	if t == nil {
		return nil, false
	}
	if t.next < len(t.users) && t.users[t.next].user == u {
		e := t.users[t.next]
		t.next++
		return t.buf[e.start:e.end], true
	}
	for i, e := range t.users {
		if e.user == u {
			t.next = i + 1
			return t.buf[e.start:e.end], true
		}
	}
	return nil, false
}

// SetClaims sets the Claims of every user t holds claims for, decoding
// them, and forgets them: for a response that is to be written by
// protojson rather than from t.
func (t *Texts) SetClaims() error {
	if t == nil {
		return nil
	}
	for _, e := range t.users {
		claims := &structpb.Struct{}
		if err := protojson.Unmarshal(t.buf[e.start:e.end], claims); err != nil {
			return fmt.Errorf("decode the claims of user %s: %w", e.user.GetId(), err)
		}
		e.user.Claims = claims
	}
	t.Reset()
	return nil
}

// Reset empties t, keeping its buffer's memory for the next request.
func (t *Texts) Reset() {
	clear(t.users) // no user outlives its response through t
	t.buf, t.users, t.next = t.buf[:0], t.users[:0], 0
}

// Size is the memory t's buffer holds.
func (t *Texts) Size() int { return cap(t.buf) }
