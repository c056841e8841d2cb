// Package service implements the users.v1 gRPC API: thin handlers that
// validate, call the store and convert, the mapping of their errors to
// statuses, and the tables (roles, events, writes) that describe each RPC.
// The server and its interceptor chain are wired in internal/app.
package service

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/etag"
	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/ids"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

// Update mask paths accepted by UpdateUser.
const (
	pathClaims   = "claims"
	pathProvider = "authentication_provider"
	pathID       = "id"
)

// Users implements usersv1.UserServiceServer.
type Users struct {
	usersv1.UnimplementedUserServiceServer
	store   store.Store
	limits  Limits
	cursors cursorCodec
}

var _ usersv1.UserServiceServer = (*Users)(nil)

// NewUsers returns the service over st. It reads the cursor signing key
// from the store once, so every instance on one database agrees on it.
func NewUsers(ctx context.Context, st store.Store, limits Limits) (*Users, error) {
	key, err := st.CursorKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("load cursor key: %w", err)
	}
	return &Users{store: st, limits: limits, cursors: cursorCodec{key: key}}, nil
}

// CreateUser stores a new user with a fresh UUIDv7 id.
func (s *Users) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.CreateUserResponse, error) {
	var vs violations
	u := req.GetUser()
	if u.GetId() != "" {
		vs.add("user.id", "is assigned by the server and must not be sent")
	}
	claims := checkClaims(&vs, "user.claims", u.GetClaims(), s.limits)
	var provider *usersv1.AuthenticationProvider
	if u.GetAuthenticationProvider() != nil {
		provider = checkProvider(&vs, "user.authentication_provider", u.GetAuthenticationProvider())
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	id := ids.NewV7()
	// userId only on SUCCESS: a failed create names no user.
	created, err := s.store.CreateUser(ctx, store.User{ID: id, Claims: string(claims), Provider: providerFromPB(provider)},
		events.TrailInTransaction(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	pb, err := userToPB(created, claimsjson.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	sendETag(ctx, created)
	return &usersv1.CreateUserResponse{User: pb}, nil
}

// GetUser returns one user.
func (s *Users) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	var vs violations
	id := checkID(&vs, "id", req.GetId())
	if err := vs.err(); err != nil {
		return nil, err
	}
	events.SetUserID(ctx, id)
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	pb, err := userToPB(u, claimsjson.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	sendETag(ctx, u)
	return &usersv1.GetUserResponse{User: pb}, nil
}

// UpdateUser replaces the parts of a user named by the update mask (or,
// without a mask, the parts that are populated), when the user has the
// version if-match names.
func (s *Users) UpdateUser(ctx context.Context, req *usersv1.UpdateUserRequest) (*usersv1.UpdateUserResponse, error) {
	var vs violations
	id := checkID(&vs, "id", req.GetId())
	ifVersion := checkIfMatch(ctx, &vs)
	u := req.GetUser()
	if bodyID := u.GetId(); bodyID != "" {
		if canon, ok := rules.CanonicalUUID(bodyID); !ok || canon != id {
			vs.add("user.id", "must match the id in the path")
		}
	}
	change := s.updateChange(&vs, req)
	change.IfVersion = ifVersion
	if err := vs.err(); err != nil {
		return nil, err
	}
	events.SetUserID(ctx, id)
	updated, err := s.store.UpdateUser(ctx, id, change, events.TrailInTransaction(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	pb, err := userToPB(updated, claimsjson.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	sendETag(ctx, updated)
	return &usersv1.UpdateUserResponse{User: pb}, nil
}

// updateChange validates the new values and turns the mask into a change.
func (s *Users) updateChange(vs *violations, req *usersv1.UpdateUserRequest) store.UserChange {
	u := req.GetUser()
	paths, ok := maskPaths(req)
	if !ok {
		vs.add("update_mask", "may only name %q and %q", pathClaims, pathProvider)
		return store.UserChange{}
	}
	var change store.UserChange
	if slices.Contains(paths, pathClaims) {
		change.SetClaims = true
		change.Claims = checkClaims(vs, "user.claims", u.GetClaims(), s.limits)
	}
	if slices.Contains(paths, pathProvider) {
		change.SetProvider = true
		if p := u.GetAuthenticationProvider(); p != nil {
			change.Provider = providerFromPB(checkProvider(vs, "user.authentication_provider", p))
		}
	}
	return change
}

// maskPaths returns the parts an update replaces. Paths below claims (as a
// derived mask may have, e.g. "claims.a.b") mean the claims as a whole.
func maskPaths(req *usersv1.UpdateUserRequest) ([]string, bool) {
	mask := req.GetUpdateMask().GetPaths()
	if req.GetUpdateMask() == nil {
		var populated []string
		if req.GetUser().GetClaims() != nil {
			populated = append(populated, pathClaims)
		}
		if req.GetUser().GetAuthenticationProvider() != nil {
			populated = append(populated, pathProvider)
		}
		return populated, true
	}
	var paths []string
	for _, p := range mask {
		switch {
		case p == pathClaims || len(p) > len(pathClaims) && p[:len(pathClaims)+1] == pathClaims+".":
			paths = append(paths, pathClaims)
		case p == pathProvider:
			paths = append(paths, pathProvider)
		case p == pathID:
			// The id is not changed by an update; a body may repeat it
			// (checked against the path id), so the mask may name it.
		default:
			return nil, false
		}
	}
	return paths, true
}

// DeleteUser removes a user and all that is stored about them, when the
// user has the version if-match names.
func (s *Users) DeleteUser(ctx context.Context, req *usersv1.DeleteUserRequest) (*usersv1.DeleteUserResponse, error) {
	var vs violations
	id := checkID(&vs, "id", req.GetId())
	ifVersion := checkIfMatch(ctx, &vs)
	if err := vs.err(); err != nil {
		return nil, err
	}
	events.SetUserID(ctx, id)
	if err := s.store.DeleteUser(ctx, id, ifVersion, events.TrailInTransaction(ctx, id)); err != nil {
		return nil, fmt.Errorf("delete user: %w", err)
	}
	return &usersv1.DeleteUserResponse{}, nil
}

// ListUsers returns one page of users in creation order.
func (s *Users) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	var vs violations
	limit := pageSize(&vs, req.Limit)
	after := s.userCursor(&vs, req.GetCursor())
	if err := vs.err(); err != nil {
		return nil, err
	}
	events.SetLimit(ctx, limit)
	page, more, err := s.store.ListUsers(ctx, store.Page{Limit: limit, AfterSeq: after})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	data, err := usersToPB(page, claimsjson.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	events.SetEntriesCount(ctx, len(data))
	resp := &usersv1.ListUsersResponse{Data: data}
	if more {
		next := s.cursors.encode(cursorListUsers, binary.BigEndian.AppendUint64(nil, uint64(page[len(page)-1].Seq)))
		resp.NextCursor = &next
	}
	return resp, nil
}

// userCursor decodes a ListUsers cursor into the sequence it continues
// after; "" is the start.
func (s *Users) userCursor(vs *violations, cursor string) int64 {
	if cursor == "" {
		return 0
	}
	pos, err := s.cursors.decode(cursorListUsers, cursor)
	if err != nil || len(pos) != 8 || int64(binary.BigEndian.Uint64(pos)) < 0 {
		vs.add("cursor", "%s", errBadCursor)
		return 0
	}
	return int64(binary.BigEndian.Uint64(pos))
}

// checkIfMatch reads the request's if-match metadata: the version the
// user must have (see etag.IfMatch), or a violation when it is not "*" or
// one entity tag.
func checkIfMatch(ctx context.Context, vs *violations) int64 {
	version, ok := etag.IfMatch(metadata.ValueFromIncomingContext(ctx, etag.IfMatchMetadata))
	if !ok {
		vs.add(etag.IfMatchMetadata, `must be * or one entity tag, such as "3"`)
	}
	return version
}

// sendETag sends the user's entity tag as etag header metadata (REST: the
// ETag header). SetHeader fails only when headers were already sent,
// which no handler does before it returns.
func sendETag(ctx context.Context, u store.User) {
	_ = grpc.SetHeader(ctx, metadata.MD{etag.Metadata: {etag.Of(u.Version)}})
}
