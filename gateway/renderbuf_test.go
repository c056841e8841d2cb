package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
)

// pagedUsers answers a page of as many users as the request's limit
// asks, each with claims of its own, naming the request's cursor. It
// hands every other user's claims over as text, as the service does.
type pagedUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func page(limit int32, cursor string) []*usersv1.User {
	users := make([]*usersv1.User, limit)
	for i := range users {
		claims, _ := structpb.NewStruct(map[string]any{
			"cursor": cursor, "n": float64(i), "bio": strings.Repeat("x", 1000+i),
		})
		users[i] = &usersv1.User{Id: fmt.Sprintf("user-%s-%d", cursor, i), Claims: claims}
	}
	return users
}

// handOver moves the claims of every other user into the request's
// texts; it fails when the request has none, which the gateway lends.
func handOver(ctx context.Context, users []*usersv1.User) error {
	texts := claimsjson.FromContext(ctx)
	if texts == nil {
		return status.Error(codes.Internal, "no claims texts in the call's context")
	}
	for i, u := range users {
		stored, err := newMarshaler().marshalCompact(u.Claims)
		if err != nil {
			return err
		}
		if i%2 == 1 && texts.Add(u, string(stored)) {
			u.Claims = nil
		}
	}
	return nil
}

func (pagedUsers) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	next := req.GetCursor() + "+"
	users := page(req.GetLimit(), req.GetCursor())
	return &usersv1.ListUsersResponse{Data: users, NextCursor: &next}, handOver(ctx, users)
}

func (pagedUsers) SearchUsers(ctx context.Context, req *usersv1.SearchUsersRequest) (*usersv1.SearchUsersResponse, error) {
	users := page(req.GetLimit(), req.GetCursor())
	return &usersv1.SearchUsersResponse{Data: users}, handOver(ctx, users)
}

// Pages rendered at once into lent buffers, which go back to be lent
// again (or, past their pool's maxKept, are dropped), each come out whole and
// as protojson writes them: no page shows another's bytes, nor another's
// claims handed over as text. Under -race this also checks that a buffer
// is taken back only after its response is written.
func TestPagesInLentBuffers(t *testing.T) {
	h, err := New(t.Context(), inProcessConn(pagedUsers{}), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 64 << 10, MaxJSONDepth: 13,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := newMarshaler()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				// From 1 user to 300 (over 300 KiB, past the buffers kept).
				limit := int32(1 + (g*37+i*53)%300)
				cursor := fmt.Sprintf("g%d-i%d", g, i)
				var (
					r    *http.Request
					want []byte
					err  error
				)
				if i%3 == 0 {
					r = httptest.NewRequest("POST", "/v1/users/search", strings.NewReader(fmt.Sprintf(`{"limit":%d,"cursor":%q}`, limit, cursor)))
					r.Header.Set("Content-Type", "application/json")
					want, err = m.marshalCompact(&usersv1.SearchUsersResponse{Data: page(limit, cursor)})
				} else {
					r = httptest.NewRequest("GET", fmt.Sprintf("/v1/users?limit=%d&cursor=%s", limit, cursor), nil)
					next := cursor + "+"
					want, err = m.marshalCompact(&usersv1.ListUsersResponse{Data: page(limit, cursor), NextCursor: &next})
				}
				if err != nil {
					t.Error(err)
					return
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK || rec.Body.String() != string(want) {
					t.Errorf("%s %s: %d, %d bytes, want 200 and the %d bytes protojson writes", r.Method, r.URL, rec.Code, rec.Body.Len(), len(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

// Only the responses that carry users get a lent buffer, pages one of
// their own.
func TestRendersUsers(t *testing.T) {
	type want struct{ users, pages bool }
	for msg, want := range map[string]want{
		"ListUsersResponse":   {true, true},
		"SearchUsersResponse": {true, true},
		"GetUserResponse":     {true, false},
		"CreateUserResponse":  {true, false},
		"UpdateUserResponse":  {true, false},
		"DeleteUserResponse":  {false, false},
		"ListEventsResponse":  {false, false},
	} {
		md := usersv1.File_users_v1_users_proto.Messages().ByName(protoreflect.Name(msg))
		if md == nil {
			t.Fatalf("no message %s", msg)
		}
		if users, pages := rendersUsers(md); users != want.users || pages != want.pages {
			t.Errorf("rendersUsers(%s) = %v, %v, want %v, %v", msg, users, pages, want.users, want.pages)
		}
	}
}

// slotWatcher is pagedUsers noting, in each ListUsers call, whether the
// request's render slot held a buffer when the call began and after the
// claims were handed over.
type slotWatcher struct {
	pagedUsers
	mu             sync.Mutex
	calls          int
	heldAtStart    int // calls whose slot held a buffer as they began
	heldAfterwards int // calls whose slot held one after the hand-over
}

func (w *slotWatcher) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	slot, _ := claimsjson.SourceFromContext(ctx).(*renderSlot)
	if slot == nil {
		return nil, status.Error(codes.Internal, "no render slot in the call's context")
	}
	atStart := slot.rb != nil
	resp, err := w.pagedUsers.ListUsers(ctx, req)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if atStart {
		w.heldAtStart++
	}
	if slot.rb != nil {
		w.heldAfterwards++
	}
	return resp, err
}

// A request is lent no render buffer while the service works on it (under
// load, mostly waiting for the database): only when the service hands
// the claims over, so that waiting requests hold no page buffers.
func TestRenderBufferTakenWhenUsersAreAtHand(t *testing.T) {
	w := &slotWatcher{}
	h, err := New(t.Context(), inProcessConn(w), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 64 << 10, MaxJSONDepth: 13,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/users?limit=4", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/users: %d %s", rec.Code, rec.Body)
		}
	}
	if w.calls != 3 || w.heldAtStart != 0 || w.heldAfterwards != 3 {
		t.Errorf("%d calls: a buffer held as %d began and after %d hand-overs, want 3, 0 and 3", w.calls, w.heldAtStart, w.heldAfterwards)
	}
}

// A slot takes its buffer on first use, gives the claims texts and the
// renderer that same buffer, and gives back only what it took.
func TestRenderSlot(t *testing.T) {
	p := &renderPool{maxKept: 1 << 10, size: 64}
	r, slot := p.lend(httptest.NewRequest("GET", "/v1/users", nil))
	if slot.rb != nil {
		t.Fatal("a buffer was taken before use")
	}
	slot.release()
	if got := p.pool.Get(); got != nil {
		t.Fatalf("an unused slot gave the pool %v", got)
	}

	r, slot = p.lend(r)
	texts := claimsjson.FromContext(r.Context())
	if texts == nil || slot.rb == nil || texts != &slot.rb.claims {
		t.Fatalf("claims texts %p, want those of the slot's buffer", texts)
	}
	if again := claimsjson.FromContext(r.Context()); again != texts {
		t.Fatal("a second ask took another buffer")
	}
	v, err := renderIntoBuffer(r.Context(), &usersv1.ListUsersResponse{})
	if err != nil || v != slot.rb {
		t.Fatalf("renderIntoBuffer gave %v (%v), want the slot's buffer", v, err)
	}
	slot.release()
	if slot.rb != nil {
		t.Fatal("the slot still holds its buffer after release")
	}
}
