// Package auth verifies bearer JWTs and enforces a role table, as gRPC
// interceptors that native gRPC and REST (through the gateway) share.
package auth

import (
	"context"
	"slices"
)

// Roles the service knows.
const (
	RoleAdmin   = "admin"
	RoleIssuer  = "issuer"
	RoleAuditor = "auditor"
)

// Principal is the verified caller.
type Principal struct {
	// Subject identifies the caller: the token's client_id or azp when
	// present (a machine client), else its sub.
	Subject string
	// Roles granted by the token's roles claim.
	Roles []string
}

// Has reports whether the principal holds any of the roles.
func (p Principal) Has(roles []string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the verified caller of the request in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
