package app

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
)

// The rejections stage fails a marked call only over the gateway's own
// channel, with the reason the mark names; elsewhere the mark is ignored.
func TestGatewayRejectionsOnlyOverTheGatewayConnection(t *testing.T) {
	marked := metadata.Pairs(rpcerr.RejectedMetadata, rpcerr.ReasonPayloadTooLarge)
	for _, tc := range []struct {
		name    string
		channel bool // over the gateway's channel, else as a network call
		md      metadata.MD
		reason  string // "": the handler runs
	}{
		{"case=marked, over the gateway's channel", true, marked, rpcerr.ReasonPayloadTooLarge},
		{"case=not marked, over the gateway's channel", true, nil, ""},
		{"case=marked, over the network", false, marked, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			handler := func(context.Context, any) (any, error) { ran = true; return &usersv1.CreateUserResponse{}, nil }
			var err error
			if tc.channel {
				ch := gatewayconn.NewChannel(gatewayRejections())
				usersv1.RegisterUserServiceServer(ch, createHandler{handler: handler})
				_, err = usersv1.NewUserServiceClient(ch).CreateUser(metadata.NewOutgoingContext(t.Context(), tc.md), &usersv1.CreateUserRequest{})
			} else {
				ctx := metadata.NewIncomingContext(t.Context(), tc.md)
				_, err = gatewayRejections()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: usersv1.UserService_CreateUser_FullMethodName}, handler)
			}
			if tc.reason == "" {
				if !ran || err != nil {
					t.Fatalf("handler ran: %v, err %v", ran, err)
				}
				return
			}
			if ran || rpcerr.Info(status.Convert(err)).GetReason() != tc.reason {
				t.Fatalf("handler ran: %v, err %v, want reason %s", ran, err, tc.reason)
			}
		})
	}
}

// createHandler serves CreateUser with its handler.
type createHandler struct {
	usersv1.UnimplementedUserServiceServer
	handler grpc.UnaryHandler
}

func (h createHandler) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.CreateUserResponse, error) {
	resp, err := h.handler(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*usersv1.CreateUserResponse), nil
}

// Through the whole server: a native gRPC call carrying the gateway's
// refusal mark is served and recorded like any other (START, SUCCESS),
// while a request the gateway refuses fails after being recorded, its
// FAIL event naming the refusal's contract code.
func TestRefusalMarkFromANativeClientIsIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole server")
	}
	s := startServer(t, seams{})

	const nativeRID, restRID = "mark-native", "mark-rest"
	ctx := metadata.AppendToOutgoingContext(t.Context(),
		rpcerr.RejectedMetadata, rpcerr.ReasonPayloadTooLarge, requestid.MetadataKey, nativeRID)
	if _, err := s.users.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}}); err != nil {
		t.Fatalf("a native call with the refusal mark failed: %v", err)
	}

	req, _ := http.NewRequest("POST", "http://"+s.addrs.HTTP+"/v1/users", bytes.NewReader([]byte(`{}`)))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set(requestid.Header, restRID)
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("REST POST as text/plain: %d", resp.StatusCode)
	}

	wantEvents(t, s, nativeRID, []string{"USER_CREATE_START", "USER_CREATE_SUCCESS"}, "")
	wantEvents(t, s, restRID, []string{"USER_CREATE_START", "USER_CREATE_FAIL"}, "UnsupportedMediaType")
}

// wantEvents waits for the events of a request (written in batches) and
// checks their types, oldest first, and the code of a FAIL.
func wantEvents(t *testing.T, s *benchServer, rid string, types []string, failCode string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := s.users.ListEvents(t.Context(), &usersv1.ListEventsRequest{RequestIds: rid})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		code := ""
		for _, ev := range slices.Backward(resp.GetData()) {
			got = append(got, ev.GetType())
			if c := ev.GetMetadata().GetFields()["code"]; c != nil {
				code = c.GetStringValue()
			}
		}
		if slices.Equal(got, types) {
			if code != failCode {
				t.Fatalf("request %s: FAIL code %q, want %q", rid, code, failCode)
			}
			return
		}
		if len(got) > len(types) || time.Now().After(deadline) {
			t.Fatalf("request %s: events %q, want %q", rid, got, types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
