package service

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// rpcsOf lists the full gRPC method names of every service in the users
// proto file.
func rpcsOf(fd protoreflect.FileDescriptor) []string {
	var out []string
	services := fd.Services()
	for i := 0; i < services.Len(); i++ {
		sd := services.Get(i)
		methods := sd.Methods()
		for j := 0; j < methods.Len(); j++ {
			out = append(out, "/"+string(sd.FullName())+"/"+string(methods.Get(j).Name()))
		}
	}
	return out
}

// Every RPC must have an entry: one without is refused to everybody, a
// deny-by-default that would surface only as a 403 in production.
func TestPolicyCoversEveryRPC(t *testing.T) {
	t.Parallel()
	rpcs := rpcsOf(usersv1.File_users_v1_users_proto)
	if len(rpcs) == 0 {
		t.Fatal("no RPCs found in the users proto")
	}
	for _, m := range rpcs {
		if _, ok := MethodRoles[m]; !ok {
			t.Errorf("%s has no entry in MethodRoles", m)
		}
	}
	for m, roles := range MethodRoles {
		if !slices.Contains(rpcs, m) {
			t.Errorf("MethodRoles names %s, which is not an RPC of the users proto", m)
		}
		if !slices.Contains(roles, auth.RoleAdmin) {
			t.Errorf("%s: roles %q lack %s (admin may do everything)", m, roles, auth.RoleAdmin)
		}
		for _, r := range roles {
			if r != auth.RoleAdmin && r != auth.RoleIssuer && r != auth.RoleAuditor {
				t.Errorf("%s: unknown role %q", m, r)
			}
		}
		if len(roles) != len(slices.Compact(slices.Sorted(slices.Values(roles)))) {
			t.Errorf("%s: duplicate roles %q", m, roles)
		}
	}
}

// Every RPC is classified as a write or a read, and only the mutations
// are writes.
func TestWritesCoverEveryRPC(t *testing.T) {
	t.Parallel()
	rpcs := rpcsOf(usersv1.File_users_v1_users_proto)
	for _, m := range rpcs {
		write, ok := Writes[m]
		if !ok {
			t.Errorf("%s has no entry in Writes", m)
			continue
		}
		name := m[strings.LastIndex(m, "/")+1:]
		mutation := strings.HasPrefix(name, "Create") || strings.HasPrefix(name, "Update") || strings.HasPrefix(name, "Delete")
		if write != mutation {
			t.Errorf("%s: Writes says %v", m, write)
		}
	}
	for m := range Writes {
		if !slices.Contains(rpcs, m) {
			t.Errorf("Writes names %s, which is not an RPC of the users proto", m)
		}
	}
}

// The contract's table: issuer runs the users operations, auditor the
// events query; neither the other's.
func TestPolicyMatchesContract(t *testing.T) {
	t.Parallel()
	for m, roles := range MethodRoles {
		name := m[strings.LastIndex(m, "/")+1:]
		var want []string
		switch {
		case strings.HasSuffix(name, "Events"):
			want = []string{auth.RoleAdmin, auth.RoleAuditor}
		case strings.HasSuffix(name, "User") || strings.HasSuffix(name, "Users"):
			want = []string{auth.RoleAdmin, auth.RoleIssuer}
		default:
			t.Errorf("%s: no rule in this test for it; add one from the contract", m)
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(roles)), slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: roles %q, want %q", m, roles, want)
		}
	}
}
