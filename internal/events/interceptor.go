package events

import (
	"context"

	"google.golang.org/grpc"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

// Ops maps a full gRPC method name to its event prefix (USER_UPDATE); ""
// means the method records no events (the events query itself).
type Ops map[string]string

// Sink takes asynchronous events (the Writer).
type Sink interface {
	// Start queues a call's START and holds room for its outcome. It
	// waits for room at most until ctx is done; an error means the call
	// must not go ahead.
	Start(ctx context.Context, start store.Event) error
	// End queues the outcome of a started call in the room held for it,
	// or gives the room back when ev is nil. It never waits.
	End(ev *store.Event)
	// Committed ends a started call whose store committed its START and
	// SUCCESS with its change: it gives the room back, and may drop the
	// queued START, written already. It never waits.
	Committed(startID string)
}

// Recorder emits the events of the calls it intercepts. It belongs after
// authentication (a call without a valid token records nothing) and before
// authorization (a valid token without the role records START and FAIL).
type Recorder struct {
	types map[string]*eventTypes // by full method; none: no events
	sink  Sink
}

// eventTypes are the event types of one operation, joined once rather
// than for every event.
type eventTypes struct{ start, success, fail string }

// NewRecorder returns a recorder for ops writing to sink.
func NewRecorder(ops Ops, sink Sink) *Recorder {
	types := make(map[string]*eventTypes, len(ops))
	for method, op := range ops {
		if op != "" {
			types[method] = &eventTypes{start: op + Start, success: op + Success, fail: op + Fail}
		}
	}
	return &Recorder{types: types, sink: sink}
}

// UnaryServerInterceptor records START before the handler and SUCCESS or
// FAIL after it, unless the handler committed SUCCESS with its change.
// When START finds no room before the call's deadline, or none is coming
// (the database is failing), the call fails with UNAVAILABLE without
// running.
// A nil Recorder records nothing: it returns no interceptor.
func (r *Recorder) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	if r == nil {
		return nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		types := r.types[info.FullMethod]
		if types == nil {
			return handler(ctx, req)
		}
		p, _ := auth.FromContext(ctx)
		c := &call{types: types, requestID: requestid.FromContext(ctx), clientID: p.Subject, metadata: startMetadata(req)}
		c.start = c.event(types.start, c.metadata)
		if err := r.sink.Start(ctx, c.start); err != nil {
			// Nothing recorded, nothing done: the trail stays whole.
			return nil, rpcerr.Unavailable("Service unavailable, retry later")
		}
		var outcome *store.Event // stays nil when the store committed SUCCESS, or on a panic
		committed := false
		defer func() {
			if committed {
				r.sink.Committed(c.start.ID)
			} else {
				r.sink.End(outcome)
			}
		}()
		resp, err := handler(withCall(ctx, c), req)
		switch {
		case err != nil:
			c.metadata.code = rpcerr.CodeWord(err)
			c.outcome = c.outcomeEvent(types.fail, c.metadata)
			outcome = &c.outcome
		case !c.inTransaction:
			c.outcome = c.outcomeEvent(types.success, c.metadata)
			outcome = &c.outcome
		default:
			committed = true // no error after the trail was taken: the store committed it
		}
		return resp, err
	}
}

// startMetadata takes what is known before the handler runs: the user id
// (only when it is a well-formed UUID: anything else is arbitrary input)
// and the requested page size.
func startMetadata(req any) metadata {
	var m metadata
	if r, ok := req.(interface{ GetId() string }); ok {
		if id, ok := rules.CanonicalUUID(r.GetId()); ok {
			m.userID = id
		}
	}
	if r, ok := req.(interface{ GetLimit() int32 }); ok && r.GetLimit() != 0 {
		m.limit, m.hasLimit = int(r.GetLimit()), true
	}
	return m
}
