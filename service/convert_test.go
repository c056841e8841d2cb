package service

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/store"
)

// Called with claims texts in its context (the gateway's in-process
// calls), every method that answers with stored users hands their claims
// over as text and leaves Claims unset; claims the texts do not take (an
// escape) are decoded as without texts.
func TestClaimsHandedOverAsText(t *testing.T) {
	const plain, escaped = `{"a":[1,"x"],"b":{"c":null}}`, `{"line":"a\u2028b"}`
	calls := map[string]func(s *Users, ctx context.Context) ([]*usersv1.User, error){
		"GetUser": func(s *Users, ctx context.Context) ([]*usersv1.User, error) {
			resp, err := s.GetUser(ctx, &usersv1.GetUserRequest{Id: userID})
			return []*usersv1.User{resp.GetUser()}, err
		},
		"UpdateUser": func(s *Users, ctx context.Context) ([]*usersv1.User, error) {
			resp, err := s.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: userID, User: &usersv1.User{}, UpdateMask: mask("authentication_provider")})
			return []*usersv1.User{resp.GetUser()}, err
		},
		"ListUsers": func(s *Users, ctx context.Context) ([]*usersv1.User, error) {
			resp, err := s.ListUsers(ctx, &usersv1.ListUsersRequest{})
			return resp.GetData(), err
		},
		"SearchUsers": func(s *Users, ctx context.Context) ([]*usersv1.User, error) {
			resp, err := s.SearchUsers(ctx, &usersv1.SearchUsersRequest{})
			return resp.GetData(), err
		},
	}
	for name, call := range calls {
		for _, stored := range []string{plain, escaped} {
			t.Run(name+"/"+stored, func(t *testing.T) {
				s, f := newTestUsers(t, DefaultLimits)
				f.user = store.User{ID: userID, Claims: stored}
				f.users = []store.User{f.user, {ID: otherID, Seq: 2, Claims: stored}}
				var texts claimsjson.Texts
				users, err := call(s, claimsjson.NewContext(t.Context(), &texts))
				if err != nil || len(users) == 0 {
					t.Fatalf("%d users, %v", len(users), err)
				}
				for _, u := range users {
					text, handed := texts.Of(u)
					switch {
					case stored == plain && (!handed || string(text) != plain || u.Claims != nil):
						t.Errorf("%s: text %q (%v), Claims %v: want the claims as text only", u.Id, text, handed, u.Claims)
					case stored == escaped && (handed || u.GetClaims().GetFields()["line"].GetStringValue() != "a\u2028b"):
						t.Errorf("%s: text %q (%v), Claims %v: want them decoded", u.Id, text, handed, u.Claims)
					}
				}
			})
		}
	}
	// CreateUser answers with the claims it stored.
	s, _ := newTestUsers(t, DefaultLimits)
	var texts claimsjson.Texts
	claims, _ := structpb.NewStruct(map[string]any{"z": "last", "a": 1.5})
	resp, err := s.CreateUser(claimsjson.NewContext(t.Context(), &texts), &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims}})
	if err != nil {
		t.Fatal(err)
	}
	if text, ok := texts.Of(resp.GetUser()); !ok || string(text) != `{"a":1.5,"z":"last"}` || resp.GetUser().Claims != nil {
		t.Errorf("created: text %q (%v), Claims %v: want the claims as text only", text, ok, resp.GetUser().Claims)
	}
}
