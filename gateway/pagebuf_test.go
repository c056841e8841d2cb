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

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// pagedUsers answers a page of as many users as the request's limit
// asks, each with claims of its own, naming the request's cursor.
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

func (pagedUsers) ListUsers(_ context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	next := req.GetCursor() + "+"
	return &usersv1.ListUsersResponse{Data: page(req.GetLimit(), req.GetCursor()), NextCursor: &next}, nil
}

func (pagedUsers) SearchUsers(_ context.Context, req *usersv1.SearchUsersRequest) (*usersv1.SearchUsersResponse, error) {
	return &usersv1.SearchUsersResponse{Data: page(req.GetLimit(), req.GetCursor())}, nil
}

// Pages rendered at once into lent buffers, which go back to be lent
// again (or, past maxKeptPageBuffer, are dropped), each come out whole and
// as protojson writes them: no page shows another's bytes. Under -race
// this also checks that a buffer is taken back only after its response
// is written.
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

// Only the responses renderUsers writes as pages get a lent buffer.
func TestRendersPage(t *testing.T) {
	for msg, want := range map[string]bool{
		"ListUsersResponse":   true,
		"SearchUsersResponse": true,
		"GetUserResponse":     false,
		"User":                false,
		"ListEventsResponse":  false,
	} {
		md := usersv1.File_users_v1_users_proto.Messages().ByName(protoreflect.Name(msg))
		if md == nil {
			t.Fatalf("no message %s", msg)
		}
		if got := rendersPage(md); got != want {
			t.Errorf("rendersPage(%s) = %v, want %v", msg, got, want)
		}
	}
}
