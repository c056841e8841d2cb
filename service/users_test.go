package service

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/etag"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/store"
)

const (
	userID     = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"
	otherID    = "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f71"
	providerID = "41458e5a-9092-40b7-9a26-d4eb43c5792f"
)

// validProvider has its provider id in upper case, which the service
// stores in lower case.
func validProvider() *usersv1.AuthenticationProvider {
	return &usersv1.AuthenticationProvider{ProviderId: strings.ToUpper(providerID), Url: "https://idp.example", SubjectId: "sub-1"}
}

// storedProvider is validProvider as describeChange prints it.
const storedProvider = providerID + "|https://idp.example|sub-1"

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func TestUpdateUserTurnsMaskIntoChange(t *testing.T) {
	nan := &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.NaN())}}
	for _, tc := range []struct {
		name   string
		req    func(t *testing.T) *usersv1.UpdateUserRequest
		change string // the change the store gets; "" when the store must not be called
		fields []string
	}{
		// With a mask: exactly the named parts, cleared when unset.
		{"case=mask claims replaces claims", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: mustStruct(t, map[string]any{"b": 2, "a": "<&>"}), AuthenticationProvider: validProvider()}, UpdateMask: mask("claims")}
		}, `claims={"a":"<&>","b":2} provider=keep`, nil},
		{"case=mask claims with claims absent clears them", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("claims")}
		}, `claims={} provider=keep`, nil},
		{"case=mask claims with an empty Struct clears them", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: &structpb.Struct{}}, UpdateMask: mask("claims")}
		}, `claims={} provider=keep`, nil},
		{"case=mask provider with provider absent unlinks", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: &structpb.Struct{}}, UpdateMask: mask("authentication_provider")}
		}, `claims=keep provider=unlink`, nil},
		{"case=mask provider links, provider id lower-cased", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{AuthenticationProvider: validProvider()}, UpdateMask: mask("authentication_provider")}
		}, `claims=keep provider=` + storedProvider, nil},
		{"case=mask both, user absent, clears both", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, UpdateMask: mask("claims", "authentication_provider")}
		}, `claims={} provider=unlink`, nil},
		{"case=empty mask changes nothing, populated or not", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: mustStruct(t, map[string]any{"a": 1}), AuthenticationProvider: validProvider()}, UpdateMask: mask()}
		}, `claims=keep provider=keep`, nil},
		{"case=paths below claims mean the claims as a whole", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: mustStruct(t, map[string]any{"a": map[string]any{"b": 1}, "c": 2})}, UpdateMask: mask("claims.a.b", "claims.c")}
		}, `claims={"a":{"b":1},"c":2} provider=keep`, nil},
		{"case=mask names the tolerated id only", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: userID, Claims: mustStruct(t, map[string]any{"a": 1})}, UpdateMask: mask("id")}
		}, `claims=keep provider=keep`, nil},
		{"case=mask id and claims", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: userID, Claims: mustStruct(t, map[string]any{"a": 1})}, UpdateMask: mask("id", "claims")}
		}, `claims={"a":1} provider=keep`, nil},
		{"case=a part left out of the mask is not validated", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: nan, AuthenticationProvider: validProvider()}, UpdateMask: mask("authentication_provider")}
		}, `claims=keep provider=` + storedProvider, nil},

		// Without a mask: the populated parts.
		{"case=no mask, claims populated", func(t *testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: mustStruct(t, map[string]any{"a": 1})}}
		}, `claims={"a":1} provider=keep`, nil},
		{"case=no mask, empty claims populated", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: &structpb.Struct{}}}
		}, `claims={} provider=keep`, nil},
		{"case=no mask, provider populated", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{AuthenticationProvider: validProvider()}}
		}, `claims=keep provider=` + storedProvider, nil},
		{"case=no mask, nothing populated changes nothing", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}}
		}, `claims=keep provider=keep`, nil},
		{"case=no mask, no user changes nothing", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID}
		}, `claims=keep provider=keep`, nil},

		// The id in the body.
		{"case=body id equal to path id in other case", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: strings.ToUpper(userID)}}
		}, `claims=keep provider=keep`, nil},
		{"case=path id upper case, body id lower case", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: strings.ToUpper(userID), User: &usersv1.User{Id: userID}}
		}, `claims=keep provider=keep`, nil},
		{"case=different body id", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: otherID, Claims: &structpb.Struct{}}}
		}, "", []string{"user.id"}},
		{"case=body id not a UUID", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: "{" + userID + "}"}}
		}, "", []string{"user.id"}},
		{"case=path id not a UUID", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: "urn:uuid:" + userID, User: &usersv1.User{Claims: &structpb.Struct{}}}
		}, "", []string{"id"}},

		// Masks that name what cannot be updated.
		{"case=unknown path", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("claims", "created_at")}
		}, "", []string{"update_mask"}},
		{"case=path that only starts like claims", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("claimsx")}
		}, "", []string{"update_mask"}},
		{"case=path below the provider", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("authentication_provider.url")}
		}, "", []string{"update_mask"}},
		{"case=JSON name instead of the field name", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("authenticationProvider")}
		}, "", []string{"update_mask"}},
		{"case=wildcard", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("*")}
		}, "", []string{"update_mask"}},
		{"case=bad body id and bad mask, both listed", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Id: otherID}, UpdateMask: mask("user")}
		}, "", []string{"user.id", "update_mask"}},

		// Values of the named parts.
		{"case=invalid claims", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: nan}, UpdateMask: mask("claims")}
		}, "", []string{"user.claims.x"}},
		{"case=invalid provider lists every violation", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{Url: "ftp://x"}}}
		}, "", []string{"user.authentication_provider.provider_id", "user.authentication_provider.url", "user.authentication_provider.subject_id"}},
		{"case=invalid claims and provider without a mask", func(*testing.T) *usersv1.UpdateUserRequest {
			return &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: nan, AuthenticationProvider: &usersv1.AuthenticationProvider{ProviderId: providerID, Url: "https://idp.example"}}}
		}, "", []string{"user.claims.x", "user.authentication_provider.subject_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			f.user = store.User{ID: userID, Claims: `{"old":true}`}
			resp, st := serve(t, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser, tc.req(t))
			if tc.change == "" {
				wantViolations(t, st, tc.fields...)
				f.none(t)
				return
			}
			wantOK(t, st)
			call := f.only(t, "UpdateUser")
			if call.id != userID {
				t.Errorf("store got id %q, want %q", call.id, userID)
			}
			if got := describeChange(call.change); got != tc.change {
				t.Errorf("store got change\n  %s\nwant\n  %s", got, tc.change)
			}
			wantTrail(t, call.trail, "USER_UPDATE", userID)
			if resp.GetUser().GetId() != userID {
				t.Errorf("response user id %q", resp.GetUser().GetId())
			}
		})
	}
}

// The response is the user as the store returns it after the change.
func TestUpdateUserAnswersWithTheStoredUser(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	f.user = store.User{ID: userID, Claims: `{"old":true}`,
		Provider: &store.ProviderLink{ProviderID: providerID, URL: "https://idp.example", SubjectID: "sub-1"}}
	resp, st := serve(t, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser,
		&usersv1.UpdateUserRequest{Id: userID, UpdateMask: mask("authentication_provider")})
	wantOK(t, st)
	u := resp.GetUser()
	if u.GetId() != userID || u.GetAuthenticationProvider() != nil || !u.GetClaims().GetFields()["old"].GetBoolValue() {
		t.Fatalf("response %v, want the stored user unlinked, claims kept", u)
	}
}

func TestCreateUser(t *testing.T) {
	// Small limits, to see that the configured ones apply.
	limits := Limits{MaxClaimsBytes: 24, MaxClaimsDepth: 2}
	for _, tc := range []struct {
		name     string
		user     func(t *testing.T) *usersv1.User
		claims   string // what the store gets; "" when the store must not be called
		provider string // as describeChange prints it, "unlink" for none
		fields   []string
	}{
		{"case=claims canonical, provider id lower-cased", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Claims: mustStruct(t, map[string]any{"b": "<&>", "a": 1.5}), AuthenticationProvider: validProvider()}
		}, `{"a":1.5,"b":"<&>"}`, storedProvider, nil},
		{"case=nothing given", func(*testing.T) *usersv1.User { return &usersv1.User{} }, `{}`, "unlink", nil},
		{"case=no user at all", func(*testing.T) *usersv1.User { return nil }, `{}`, "unlink", nil},
		{"case=depth at the limit", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Claims: mustStruct(t, map[string]any{"a": map[string]any{"b": 1}})}
		}, `{"a":{"b":1}}`, "unlink", nil},
		{"case=id sent", func(*testing.T) *usersv1.User { return &usersv1.User{Id: userID} }, "", "", []string{"user.id"}},
		{"case=claims too deep", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Claims: mustStruct(t, map[string]any{"a": map[string]any{"b": map[string]any{"c": 1}}})}
		}, "", "", []string{"user.claims.a.b"}},
		{"case=claims too large", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Claims: mustStruct(t, map[string]any{"k": strings.Repeat("x", 17)})}
		}, "", "", []string{"user.claims"}},
		{"case=provider with every field wrong", func(*testing.T) *usersv1.User {
			return &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{ProviderId: "nope", Url: "/relative", SubjectId: "a\nb"}}
		}, "", "", []string{"user.authentication_provider.provider_id", "user.authentication_provider.url", "user.authentication_provider.subject_id"}},
		{"case=U+0000 in claims", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Claims: mustStruct(t, map[string]any{"s": "\x00", "k\x00": 1})}
		}, "", "", []string{"user.claims", "user.claims.s"}},
		{"case=empty provider", func(*testing.T) *usersv1.User {
			return &usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{}}
		}, "", "", []string{"user.authentication_provider.provider_id", "user.authentication_provider.url", "user.authentication_provider.subject_id"}},
		{"case=all at once, in field order", func(t *testing.T) *usersv1.User {
			return &usersv1.User{Id: "x", Claims: mustStruct(t, map[string]any{"n": float64(1 << 60)}), AuthenticationProvider: &usersv1.AuthenticationProvider{ProviderId: providerID, Url: "https://idp.example"}}
		}, "", "", []string{"user.id", "user.claims.n", "user.authentication_provider.subject_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, limits)
			resp, st := serve(t, usersv1.UserService_CreateUser_FullMethodName, s.CreateUser, &usersv1.CreateUserRequest{User: tc.user(t)})
			if tc.claims == "" {
				wantViolations(t, st, tc.fields...)
				f.none(t)
				return
			}
			wantOK(t, st)
			call := f.only(t, "CreateUser")
			id, err := uuid.Parse(call.user.ID)
			if err != nil || id.Version() != 7 || id.String() != call.user.ID {
				t.Errorf("store got id %q, want a canonical UUIDv7", call.user.ID)
			}
			got := describeChange(store.UserChange{SetClaims: true, Claims: []byte(call.user.Claims), SetProvider: true, Provider: call.user.Provider})
			if want := "claims=" + tc.claims + " provider=" + tc.provider; got != want {
				t.Errorf("store got %s, want %s", got, want)
			}
			wantTrail(t, call.trail, "USER_CREATE", call.user.ID)
			if resp.GetUser().GetId() != call.user.ID {
				t.Errorf("response id %q, stored %q", resp.GetUser().GetId(), call.user.ID)
			}
		})
	}
}

// Get and Delete take an id in canonical UUID text only, either case, and
// hand the store its lower-case form.
func TestUserIDValidation(t *testing.T) {
	rpcs := []struct {
		name string
		call func(t *testing.T, s *Users, id string) *status.Status
	}{
		{"GetUser", func(t *testing.T, s *Users, id string) *status.Status {
			_, st := serve(t, usersv1.UserService_GetUser_FullMethodName, s.GetUser, &usersv1.GetUserRequest{Id: id})
			return st
		}},
		{"DeleteUser", func(t *testing.T, s *Users, id string) *status.Status {
			_, st := serve(t, usersv1.UserService_DeleteUser_FullMethodName, s.DeleteUser, &usersv1.DeleteUserRequest{Id: id})
			return st
		}},
	}
	for _, tc := range []struct {
		name, id string
		valid    bool
	}{
		{"case=lower case", userID, true},
		{"case=upper case", strings.ToUpper(userID), true},
		{"case=mixed case", "0190A7c2-7E3b-7c41-9F3e-2b1C4d5e6F70", true},
		{"case=braces", "{" + userID + "}", false},
		{"case=urn", "urn:uuid:" + userID, false},
		{"case=32 hex digits", strings.ReplaceAll(userID, "-", ""), false},
		{"case=leading space", " " + userID, false},
		{"case=trailing newline", userID + "\n", false},
		{"case=tab inside", strings.Replace(userID, "-", "\t", 1), false},
		{"case=empty", "", false},
		{"case=not hex", strings.Replace(userID, "0", "g", 1), false},
	} {
		for _, rpc := range rpcs {
			t.Run(tc.name+"/"+rpc.name, func(t *testing.T) {
				s, f := newTestUsers(t, DefaultLimits)
				f.user = store.User{ID: userID, Claims: `{}`}
				st := rpc.call(t, s, tc.id)
				if !tc.valid {
					wantViolations(t, st, "id")
					f.none(t)
					return
				}
				wantOK(t, st)
				call := f.only(t, rpc.name)
				if call.id != userID {
					t.Fatalf("store got id %q, want %q", call.id, userID)
				}
				if rpc.name == "DeleteUser" {
					wantTrail(t, call.trail, "USER_DELETE", userID)
				}
			})
		}
	}
}

func TestGetUserAnswersWithTheStoredUser(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	f.user = store.User{ID: userID, Claims: `{"a":[1,"x"]}`,
		Provider: &store.ProviderLink{ProviderID: providerID, URL: "https://idp.example", SubjectID: "sub-1"}}
	resp, st := serve(t, usersv1.UserService_GetUser_FullMethodName, s.GetUser, &usersv1.GetUserRequest{Id: userID})
	wantOK(t, st)
	u := resp.GetUser()
	if u.GetId() != userID || len(u.GetClaims().GetFields()["a"].GetListValue().GetValues()) != 2 ||
		u.GetAuthenticationProvider().GetSubjectId() != "sub-1" || u.GetAuthenticationProvider().GetProviderId() != providerID {
		t.Fatalf("response %v, want the stored user", u)
	}
}

// usersCursor is the ListUsers cursor continuing after seq, as the
// service issues it.
func usersCursor(s *Users, seq uint64) string {
	return s.cursors.encode(cursorListUsers, binary.BigEndian.AppendUint64(nil, seq))
}

func TestListUsersLimitAndCursor(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	other := cursorCodec{key: []byte("another key, another database..")}
	for _, tc := range []struct {
		name   string
		req    func(s *Users) *usersv1.ListUsersRequest
		page   *store.Page // nil: the store must not be called
		fields []string
	}{
		{"case=defaults", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{} }, &store.Page{Limit: 100}, nil},
		{"case=limit 1", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Limit: i32(1)} }, &store.Page{Limit: 1}, nil},
		{"case=limit 1000", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Limit: i32(1000)} }, &store.Page{Limit: 1000}, nil},
		{"case=cursor continues after its position", func(s *Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Cursor: usersCursor(s, 42), Limit: i32(5)}
		}, &store.Page{Limit: 5, AfterSeq: 42}, nil},
		{"case=limit 0", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Limit: i32(0)} }, nil, []string{"limit"}},
		{"case=limit -1", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Limit: i32(-1)} }, nil, []string{"limit"}},
		{"case=limit 1001", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Limit: i32(1001)} }, nil, []string{"limit"}},
		{"case=garbage cursor", func(*Users) *usersv1.ListUsersRequest { return &usersv1.ListUsersRequest{Cursor: "not-a-cursor"} }, nil, []string{"cursor"}},
		{"case=events cursor", func(s *Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Cursor: s.cursors.encode(cursorListEvents, make([]byte, 8))}
		}, nil, []string{"cursor"}},
		{"case=cursor of another database", func(*Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Cursor: other.encode(cursorListUsers, make([]byte, 8))}
		}, nil, []string{"cursor"}},
		{"case=cursor with a negative position", func(s *Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Cursor: usersCursor(s, 1<<63)}
		}, nil, []string{"cursor"}},
		{"case=cursor with a short position", func(s *Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Cursor: s.cursors.encode(cursorListUsers, []byte{0, 0, 0, 42})}
		}, nil, []string{"cursor"}},
		{"case=bad limit and cursor, both listed", func(*Users) *usersv1.ListUsersRequest {
			return &usersv1.ListUsersRequest{Limit: i32(0), Cursor: "x"}
		}, nil, []string{"limit", "cursor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			_, st := serve(t, usersv1.UserService_ListUsers_FullMethodName, s.ListUsers, tc.req(s))
			if tc.page == nil {
				wantViolations(t, st, tc.fields...)
				f.none(t)
				return
			}
			wantOK(t, st)
			if got := f.only(t, "ListUsers").page; got != *tc.page {
				t.Fatalf("store got %+v, want %+v", got, *tc.page)
			}
		})
	}
}

// A page with a successor carries the cursor that continues after its last
// user; the last page carries none.
func TestListUsersNextCursor(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	f.users = []store.User{{ID: userID, Seq: 7, Claims: `{}`}, {ID: otherID, Seq: 42, Claims: `{}`}}
	f.more = true
	resp, st := serve(t, usersv1.UserService_ListUsers_FullMethodName, s.ListUsers, &usersv1.ListUsersRequest{})
	wantOK(t, st)
	if len(resp.GetData()) != 2 || resp.GetData()[1].GetId() != otherID || resp.NextCursor == nil {
		t.Fatalf("response %v, want both users and a next cursor", resp)
	}
	f.more = false
	resp, st = serve(t, usersv1.UserService_ListUsers_FullMethodName, s.ListUsers, &usersv1.ListUsersRequest{Cursor: resp.GetNextCursor()})
	wantOK(t, st)
	if got := f.calls[1].page; got != (store.Page{Limit: 100, AfterSeq: 42}) {
		t.Fatalf("second page asked the store for %+v, want after seq 42", got)
	}
	if resp.NextCursor != nil {
		t.Fatalf("last page has next cursor %q", resp.GetNextCursor())
	}
}

func TestListEventsFilterAndCursor(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	last := store.Event{ID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7a", Time: time.Date(2026, 11, 28, 13, 2, 5, 123_000_000, time.UTC), Metadata: []byte(`{}`)}
	for _, tc := range []struct {
		name   string
		req    func(s *Users) *usersv1.ListEventsRequest
		filter string // the filter the store gets, printed; "" when the store must not be called
		fields []string
	}{
		{"case=defaults", func(*Users) *usersv1.ListEventsRequest { return &usersv1.ListEventsRequest{} },
			"limit=100 ids=[] requests=[] types=[] from=- to=- before=-", nil},
		{"case=lists split, ids lower-cased, times rounded to inclusive milliseconds", func(*Users) *usersv1.ListEventsRequest {
			return &usersv1.ListEventsRequest{
				Limit: i32(3), Ids: strings.ToUpper(userID) + "," + otherID, RequestIds: "r-1,r-2", Categories: "admin", Types: "A,B",
				DateFrom: "2026-11-28T13:02:05.1231+01:00", DateTo: "2026-11-28T13:02:05.1239Z",
			}
		}, "limit=3 ids=[" + userID + " " + otherID + "] requests=[r-1 r-2] types=[A B] " +
			"from=2026-11-28T12:02:05.124Z to=2026-11-28T13:02:05.123Z before=-", nil},
		{"case=cursor continues before its event", func(s *Users) *usersv1.ListEventsRequest {
			return &usersv1.ListEventsRequest{Cursor: s.cursors.encode(cursorListEvents, eventPosition(last))}
		}, "limit=100 ids=[] requests=[] types=[] from=- to=- before=2026-11-28T13:02:05.123Z/" + last.ID, nil},
		{"case=users cursor", func(s *Users) *usersv1.ListEventsRequest {
			return &usersv1.ListEventsRequest{Cursor: usersCursor(s, 1)}
		}, "", []string{"cursor"}},
		{"case=limit 0", func(*Users) *usersv1.ListEventsRequest { return &usersv1.ListEventsRequest{Limit: i32(0)} }, "", []string{"limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			_, st := serve(t, usersv1.UserService_ListEvents_FullMethodName, s.ListEvents, tc.req(s))
			if tc.filter == "" {
				wantViolations(t, st, tc.fields...)
				f.none(t)
				return
			}
			wantOK(t, st)
			if got := describeFilter(f.only(t, "ListEvents").filter); got != tc.filter {
				t.Fatalf("store got\n  %s\nwant\n  %s", got, tc.filter)
			}
		})
	}
}

// The service records one category, "user", so it decides a category
// filter itself: naming "user" lists every event whatever the types,
// naming only other categories leaves the types to match, or nothing.
func TestListEventsCategoriesResolved(t *testing.T) {
	for _, tc := range []struct {
		categories, types string
		filter            string // the filter the store gets; "" when it must not be called
	}{
		{"user", "", "limit=100 ids=[] requests=[] types=[] from=- to=- before=-"},
		{"admin,user", "A,B", "limit=100 ids=[] requests=[] types=[] from=- to=- before=-"},
		{"admin", "A", "limit=100 ids=[] requests=[] types=[A] from=- to=- before=-"},
		{"admin,system", "", ""},
		{"User", "", ""}, // categories are case-sensitive, as types are
	} {
		t.Run("case="+tc.categories+"/"+tc.types, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			resp, st := serve(t, usersv1.UserService_ListEvents_FullMethodName, s.ListEvents,
				&usersv1.ListEventsRequest{Categories: tc.categories, Types: tc.types})
			wantOK(t, st)
			if tc.filter == "" {
				f.none(t)
				if resp.Data == nil || len(resp.Data) != 0 || resp.NextCursor != nil {
					t.Errorf("response %v, want an empty page (data [], no cursor)", resp)
				}
				return
			}
			if got := describeFilter(f.only(t, "ListEvents").filter); got != tc.filter {
				t.Errorf("store got\n  %s\nwant\n  %s", got, tc.filter)
			}
		})
	}
}

// A page of events with a successor carries the cursor that continues
// before its last event.
func TestListEventsNextCursor(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	f.events = []store.Event{
		{ID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7b", Time: time.UnixMilli(1795877756124).UTC(), Metadata: []byte(`{}`)},
		{ID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7a", Time: time.UnixMilli(1795877756123).UTC(), Metadata: []byte(`{}`)},
	}
	f.more = true
	resp, st := serve(t, usersv1.UserService_ListEvents_FullMethodName, s.ListEvents, &usersv1.ListEventsRequest{})
	wantOK(t, st)
	if len(resp.GetData()) != 2 || resp.NextCursor == nil {
		t.Fatalf("response %v, want both events and a next cursor", resp)
	}
	_, st = serve(t, usersv1.UserService_ListEvents_FullMethodName, s.ListEvents, &usersv1.ListEventsRequest{Cursor: resp.GetNextCursor()})
	wantOK(t, st)
	if b := f.calls[1].filter.Before; b == nil || b.ID != f.events[1].ID || !b.Time.Equal(f.events[1].Time) {
		t.Fatalf("second page asked the store for events before %+v, want the last listed", b)
	}
}

// describeFilter prints an EventFilter for comparison.
func describeFilter(f store.EventFilter) string {
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(eventTimeLayout)
	}
	before := "-"
	if f.Before != nil {
		before = f.Before.Time.Format(eventTimeLayout) + "/" + f.Before.ID
	}
	list := func(v []string) string { return "[" + strings.Join(v, " ") + "]" }
	return fmt.Sprintf("limit=%d ids=%s requests=%s types=%s from=%s to=%s before=%s",
		f.Limit, list(f.IDs), list(f.RequestIDs), list(f.Types), at(f.From), at(f.To), before)
}

// The store's sentinels reach the client as their statuses whichever
// handler met them, so handlers must wrap them, never flatten them.
func TestStoreErrorsBecomeStatuses(t *testing.T) {
	rpcs := map[string]func(t *testing.T, s *Users) *status.Status{
		"CreateUser": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_CreateUser_FullMethodName, s.CreateUser, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: validProvider()}})
			return st
		},
		"GetUser": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_GetUser_FullMethodName, s.GetUser, &usersv1.GetUserRequest{Id: userID})
			return st
		},
		"UpdateUser": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser, &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{AuthenticationProvider: validProvider()}})
			return st
		},
		"DeleteUser": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_DeleteUser_FullMethodName, s.DeleteUser, &usersv1.DeleteUserRequest{Id: userID})
			return st
		},
		"ListUsers": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_ListUsers_FullMethodName, s.ListUsers, &usersv1.ListUsersRequest{})
			return st
		},
		"ListEvents": func(t *testing.T, s *Users) *status.Status {
			_, st := serve(t, usersv1.UserService_ListEvents_FullMethodName, s.ListEvents, &usersv1.ListEventsRequest{})
			return st
		},
	}
	unavailable := fmt.Errorf("sqlite: write: %w: database or disk is full (13)", store.ErrUnavailable)
	for _, tc := range []struct {
		rpc     string
		err     error
		code    codes.Code
		reason  string
		message string
	}{
		{"GetUser", fmt.Errorf("sqlite: get user: %w", store.ErrNotFound), codes.NotFound, ReasonUserNotFound, "User not found"},
		{"UpdateUser", fmt.Errorf("sqlite: update user: %w", store.ErrNotFound), codes.NotFound, ReasonUserNotFound, "User not found"},
		{"DeleteUser", fmt.Errorf("sqlite: delete user: %w", store.ErrNotFound), codes.NotFound, ReasonUserNotFound, "User not found"},
		{"CreateUser", fmt.Errorf("sqlite: create user: %w", store.ErrProviderLinkConflict), codes.AlreadyExists, ReasonProviderLinkConflict,
			"This authentication provider account is already linked to another user"},
		{"UpdateUser", fmt.Errorf("sqlite: update user: %w", store.ErrProviderLinkConflict), codes.AlreadyExists, ReasonProviderLinkConflict,
			"This authentication provider account is already linked to another user"},
		{"UpdateUser", fmt.Errorf("sqlite: update user: %w", store.ErrVersionMismatch), codes.FailedPrecondition, ReasonETagMismatch,
			"The user's version does not match If-Match"},
		{"DeleteUser", fmt.Errorf("sqlite: delete user: %w", store.ErrVersionMismatch), codes.FailedPrecondition, ReasonETagMismatch,
			"The user's version does not match If-Match"},
		{"CreateUser", unavailable, codes.Unavailable, rpcerr.ReasonUnavailable, "Service unavailable, retry later"},
		{"ListUsers", unavailable, codes.Unavailable, rpcerr.ReasonUnavailable, "Service unavailable, retry later"},
		{"ListEvents", unavailable, codes.Unavailable, rpcerr.ReasonUnavailable, "Service unavailable, retry later"},
		{"GetUser", errors.New("sqlite: get user: disk I/O error"), codes.Internal, ReasonInternal, "Internal error"},
	} {
		t.Run(tc.rpc+"/"+tc.reason, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			f.err = tc.err
			st := rpcs[tc.rpc](t, s)
			if st.Code() != tc.code || st.Message() != tc.message || rpcerr.Info(st).GetReason() != tc.reason {
				t.Fatalf("status %v %q reason %q; want %v %q reason %q",
					st.Code(), st.Message(), rpcerr.Info(st).GetReason(), tc.code, tc.message, tc.reason)
			}
			var retry *errdetails.RetryInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					retry = ri
				}
			}
			if wantRetry := tc.code == codes.Unavailable; (retry != nil) != wantRetry ||
				wantRetry && retry.GetRetryDelay().AsDuration() != rpcerr.RetryAfter {
				t.Fatalf("RetryInfo %v, want one of %v only when UNAVAILABLE", retry, rpcerr.RetryAfter)
			}
		})
	}
}

// UpdateUser and DeleteUser hand the store the version if-match names: "*"
// and no if-match are unconditional (the store still says when the user
// is missing), a weak tag or one this server never issues is a version no
// user has, and anything but "*" or one entity tag is refused before the
// store is asked.
func TestIfMatch(t *testing.T) {
	rpcs := []struct {
		name string
		call func(t *testing.T, s *Users, id string, md metadata.MD) *status.Status
		// version returns the version the store was asked for.
		version func(c storeCall) int64
	}{
		{"UpdateUser", func(t *testing.T, s *Users, id string, md metadata.MD) *status.Status {
			_, st, _ := serveMD(t, md, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser,
				&usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: &structpb.Struct{}}})
			return st
		}, func(c storeCall) int64 { return c.change.IfVersion }},
		{"DeleteUser", func(t *testing.T, s *Users, id string, md metadata.MD) *status.Status {
			_, st, _ := serveMD(t, md, usersv1.UserService_DeleteUser_FullMethodName, s.DeleteUser, &usersv1.DeleteUserRequest{Id: id})
			return st
		}, func(c storeCall) int64 { return c.ifVersion }},
	}
	for _, tc := range []struct {
		name    string
		id      string
		ifMatch []string
		version int64    // what the store is asked for
		fields  []string // violations instead
	}{
		{"case=no if-match is unconditional", userID, nil, 0, nil},
		{"case=star is any version", userID, []string{"*"}, 0, nil},
		{"case=strong tag", userID, []string{`"3"`}, 3, nil},
		{"case=strong tag with spaces", userID, []string{` "12" `}, 12, nil},
		{"case=weak tag never matches", userID, []string{`W/"3"`}, etag.NoVersion, nil},
		{"case=tag never issued", userID, []string{`"abc"`}, etag.NoVersion, nil},
		{"case=zero is no version", userID, []string{`"0"`}, etag.NoVersion, nil},
		{"case=unquoted", userID, []string{"3"}, 0, []string{"if-match"}},
		{"case=empty", userID, []string{""}, 0, []string{"if-match"}},
		{"case=a list", userID, []string{`"3", "4"`}, 0, []string{"if-match"}},
		{"case=two values", userID, []string{`"3"`, `"3"`}, 0, []string{"if-match"}},
		{"case=bad id and bad if-match, both listed", "nope", []string{"x"}, 0, []string{"id", "if-match"}},
	} {
		for _, rpc := range rpcs {
			t.Run(tc.name+"/"+rpc.name, func(t *testing.T) {
				s, f := newTestUsers(t, DefaultLimits)
				f.user = store.User{ID: userID, Claims: `{}`, Version: 3}
				var md metadata.MD
				if tc.ifMatch != nil {
					md = metadata.MD{"if-match": tc.ifMatch}
				}
				st := rpc.call(t, s, tc.id, md)
				if tc.fields != nil {
					wantViolations(t, st, tc.fields...)
					f.none(t)
					return
				}
				wantOK(t, st)
				if got := rpc.version(f.only(t, rpc.name)); got != tc.version {
					t.Fatalf("store asked for version %d, want %d", got, tc.version)
				}
			})
		}
	}
}

// A mismatch is FAILED_PRECONDITION, but a missing user stays NOT_FOUND
// whatever if-match says: the condition is about a user that exists.
func TestIfMatchOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		ifMatch string
		code    codes.Code
	}{
		{"case=stale version", fmt.Errorf("sqlite: %w", store.ErrVersionMismatch), `"2"`, codes.FailedPrecondition},
		{"case=weak tag on an existing user", fmt.Errorf("sqlite: %w", store.ErrVersionMismatch), `W/"3"`, codes.FailedPrecondition},
		{"case=missing user with a tag", fmt.Errorf("sqlite: %w", store.ErrNotFound), `"3"`, codes.NotFound},
		{"case=missing user with star", fmt.Errorf("sqlite: %w", store.ErrNotFound), "*", codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f := newTestUsers(t, DefaultLimits)
			f.err = tc.err
			md := metadata.MD{"if-match": {tc.ifMatch}}
			_, st, header := serveMD(t, md, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser,
				&usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{Claims: &structpb.Struct{}}})
			if st.Code() != tc.code {
				t.Fatalf("UpdateUser: status %v %q, want %v", st.Code(), st.Message(), tc.code)
			}
			if len(header.Get("etag")) != 0 {
				t.Errorf("UpdateUser failed with etag %q", header.Get("etag"))
			}
			_, st, _ = serveMD(t, md, usersv1.UserService_DeleteUser_FullMethodName, s.DeleteUser, &usersv1.DeleteUserRequest{Id: userID})
			if st.Code() != tc.code {
				t.Fatalf("DeleteUser: status %v %q, want %v", st.Code(), st.Message(), tc.code)
			}
		})
	}
}

// Every response that carries a user sends its version as the strong
// entity tag in etag header metadata; a delete sends none.
func TestETagHeader(t *testing.T) {
	s, f := newTestUsers(t, DefaultLimits)
	f.user = store.User{ID: userID, Claims: `{}`, Version: 4}
	for _, tc := range []struct {
		rpc  string
		call func() (metadata.MD, *status.Status)
		want []string
	}{
		{"CreateUser", func() (metadata.MD, *status.Status) {
			_, st, h := serveMD(t, nil, usersv1.UserService_CreateUser_FullMethodName, s.CreateUser, &usersv1.CreateUserRequest{})
			return h, st
		}, []string{`"1"`}},
		{"GetUser", func() (metadata.MD, *status.Status) {
			_, st, h := serveMD(t, nil, usersv1.UserService_GetUser_FullMethodName, s.GetUser, &usersv1.GetUserRequest{Id: userID})
			return h, st
		}, []string{`"4"`}},
		{"UpdateUser", func() (metadata.MD, *status.Status) {
			_, st, h := serveMD(t, metadata.MD{"if-match": {`"4"`}}, usersv1.UserService_UpdateUser_FullMethodName, s.UpdateUser,
				&usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}})
			return h, st
		}, []string{`"5"`}},
		{"DeleteUser", func() (metadata.MD, *status.Status) {
			_, st, h := serveMD(t, nil, usersv1.UserService_DeleteUser_FullMethodName, s.DeleteUser, &usersv1.DeleteUserRequest{Id: userID})
			return h, st
		}, nil},
	} {
		t.Run(tc.rpc, func(t *testing.T) {
			header, st := tc.call()
			wantOK(t, st)
			if got := header.Get("etag"); !slices.Equal(got, tc.want) {
				t.Fatalf("etag %q, want %q", got, tc.want)
			}
		})
	}
}
