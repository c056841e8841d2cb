package service

import (
	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
)

// MethodRoles says which roles may call each RPC; admin may call every
// one. An RPC missing here is refused to everybody (a test walks the
// service descriptor so none is forgotten).
var MethodRoles = auth.Policy{
	usersv1.UserService_CreateUser_FullMethodName:  {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_GetUser_FullMethodName:     {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_UpdateUser_FullMethodName:  {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_DeleteUser_FullMethodName:  {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_ListUsers_FullMethodName:   {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_SearchUsers_FullMethodName: {auth.RoleAdmin, auth.RoleIssuer},
	usersv1.UserService_ListEvents_FullMethodName:  {auth.RoleAdmin, auth.RoleAuditor},
}

// Writes says which RPCs write to the database (true) and which only read
// (false); writes queue for the database's single writer, so they have a
// bound of their own on how many may be in flight. Every RPC has an entry
// (a test walks the service descriptor).
var Writes = map[string]bool{
	usersv1.UserService_CreateUser_FullMethodName:  true,
	usersv1.UserService_GetUser_FullMethodName:     false,
	usersv1.UserService_UpdateUser_FullMethodName:  true,
	usersv1.UserService_DeleteUser_FullMethodName:  true,
	usersv1.UserService_ListUsers_FullMethodName:   false,
	usersv1.UserService_SearchUsers_FullMethodName: false,
	usersv1.UserService_ListEvents_FullMethodName:  false,
}

// IsWrite reports whether the RPC writes to the database.
func IsWrite(fullMethod string) bool { return Writes[fullMethod] }
