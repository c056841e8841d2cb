package app

import (
	"strings"
	"testing"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// The server guards the users service: it is not one of the public
// services that skip authentication.
func TestPolicyUsersServiceIsGuarded(t *testing.T) {
	t.Parallel()
	if publicServices[usersv1.UserService_ServiceDesc.ServiceName] {
		t.Fatal("the users service is listed as public")
	}
	for name := range publicServices {
		if !strings.HasPrefix(name, "grpc.health.") && !strings.HasPrefix(name, "grpc.reflection.") {
			t.Errorf("public service %s is neither health nor reflection", name)
		}
	}
}
