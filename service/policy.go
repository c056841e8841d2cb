package service

import (
	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// MethodRoles says which roles may call each RPC; admin may call every
// one. An RPC missing here is refused to everybody (a test walks the
// service descriptor so none is forgotten).
var MethodRoles = auth.Policy{
	usersv1.UserService_CreateUser_FullMethodName: {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_GetUser_FullMethodName:    {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_UpdateUser_FullMethodName: {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_DeleteUser_FullMethodName: {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_ListUsers_FullMethodName:  {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_ListEvents_FullMethodName: {auth.RoleAdmin, auth.RoleAuditor},
}
