package gateway

import (
	"context"
	"net/http"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
)

// A response that carries users (a user, a page of them) is rendered
// into a buffer lent to its request and taken back once the response is
// written, instead of a new one per response: the page's buffer, about
// 50 KiB for 100 users, was a quarter of the bytes a REST list page
// allocated, and the collections those bytes brought on cost more than
// the page's JSON quoting. callgrind: about 9% fewer instructions per
// REST list page.
//
// The lent buffer also holds the users' claims as the service hands them
// over, as JSON text (claimsjson): the service finds them in the
// request's context, which the in-process call keeps.
//
// The guard puts a slot for the buffer in the request's context; the
// buffer itself comes from the pool only when the service asks for the
// claims texts or the response is rendered, whichever is first. Most of a
// request's time under load is spent waiting for the database, and buffers
// lent for all of it were held by every waiting request: 32 concurrent
// list pages held 32 page buffers, and when a collection found them live
// it set the heap's next goal (GOGC 175) up to 19 MB instead of 12, and
// the peak RSS rose by up to 6 MiB for a moment.
//
// The buffer goes from the guard to the marshaler inside the request's
// context: the mux hands the response and that context to its response
// rewriter (renderIntoBuffer), whose result is what the marshaler gets.
// The mux writes the marshaler's bytes with one w.Write, which keeps
// nothing of them (io.Writer), before the guard takes the buffer back.

// Pages and single users take their buffers from pools of their own, so
// that a request for one user does not hold a page's 64 KiB while it runs:
// held by 32 concurrent creates, those buffers raised the heap's goal
// (GOGC 175) and the peak RSS by 4-5 MiB (43 MiB against 38).
var (
	pageBuffers = renderPool{maxKept: 256 << 10, size: 64 << 10}
	userBuffers = renderPool{maxKept: 32 << 10, size: 2 << 10}
)

// renderPool keeps buffers for reuse: a larger one (a page of a thousand
// users with large claims) goes with its response.
type renderPool struct {
	pool          sync.Pool
	maxKept, size int
}

// renderBuffer is a buffer lent to one request, the response it is to
// render (set by renderIntoBuffer), and its users' claims.
type renderBuffer struct {
	b      []byte
	msg    any
	claims claimsjson.Texts
}

// renderSlot is one request's claim on a buffer of its pool, taken when
// first used. It serves one request, on one goroutine at a time.
type renderSlot struct {
	from *renderPool
	rb   *renderBuffer // nil until used
}

// lend returns r with a slot for a render buffer of p in its context, as
// the claimsjson.Source of its claims texts (which is also how the
// renderer finds it); give it back with release once the response is
// written.
func (p *renderPool) lend(r *http.Request) (*http.Request, *renderSlot) {
	slot := &renderSlot{from: p}
	return r.WithContext(claimsjson.NewContext(r.Context(), slot)), slot
}

// buffer returns the slot's buffer, taking one from the pool on first use.
func (s *renderSlot) buffer() *renderBuffer {
	if s.rb == nil {
		s.rb, _ = s.from.pool.Get().(*renderBuffer)
		if s.rb == nil {
			s.rb = &renderBuffer{b: make([]byte, 0, s.from.size)}
		}
	}
	return s.rb
}

// Texts returns the claims texts of the slot's buffer (claimsjson.Source).
func (s *renderSlot) Texts() *claimsjson.Texts { return &s.buffer().claims }

// release gives the slot's buffer back to the pool it came from, if it
// took one, unless it grew past the pool's maxKept.
func (s *renderSlot) release() {
	rb := s.rb
	if rb == nil {
		return
	}
	s.rb = nil
	rb.msg = nil
	rb.claims.Reset()
	if cap(rb.b) <= s.from.maxKept && rb.claims.Size() <= s.from.maxKept {
		rb.b = rb.b[:0]
		s.from.pool.Put(rb)
	}
}

// renderIntoBuffer is the mux's response rewriter: the response of a
// request lent a render slot reaches the marshaler (compactJSON.Marshal)
// with the slot's buffer; any other, as it is. A route whose HTTP rule
// names a response_body field renders that field (the user of a
// GetUserResponse), which the mux would take from the response itself,
// but not from the buffer.
func renderIntoBuffer(ctx context.Context, resp proto.Message) (any, error) {
	slot, ok := claimsjson.SourceFromContext(ctx).(*renderSlot)
	if !ok {
		return resp, nil
	}
	rb := slot.buffer()
	if body, ok := resp.(interface{ XXX_ResponseBody() any }); ok {
		rb.msg = body.XXX_ResponseBody()
	} else {
		rb.msg = resp
	}
	return rb, nil
}

// rendersUsers reports whether responses of type md carry users that
// renderUsers writes, and whether they are pages (pageOf) rather than a
// message with a user field, so that their requests are lent a render
// buffer of the right pool.
func rendersUsers(md protoreflect.MessageDescriptor) (users, pages bool) {
	if _, _, isPage := pageOf(goType(md).New().Interface()); isPage {
		return true, true
	}
	user := (&usersv1.User{}).ProtoReflect().Descriptor()
	fields := md.Fields()
	for i := range fields.Len() {
		if fields.Get(i).Message() == user {
			return true, false
		}
	}
	return false, false
}
