// Package rpcerr builds the gRPC statuses usersd returns: a code, a message
// written for clients, and an ErrorInfo naming the reason in our domain.
// The REST gateway shows a status message verbatim only when it carries
// this domain, so text from elsewhere (transport, decoding) never leaks.
package rpcerr

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the ErrorInfo domain of every error usersd produces.
const Domain = "usersd"

// Reasons shared by more than one package (the gateway reads them).
const (
	// ReasonMissingToken: no usable bearer token was presented.
	ReasonMissingToken = "MISSING_TOKEN"
	// ReasonInvalidToken: a bearer token was presented and refused.
	ReasonInvalidToken = "INVALID_TOKEN"
	// ReasonRoleRequired: the caller lacks every role the call allows.
	ReasonRoleRequired = "ROLE_REQUIRED"
)

// New returns a status error with an ErrorInfo{reason, Domain} and any
// further details (such as a BadRequest).
func New(code codes.Code, msg, reason string, extra ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: Domain}}, extra...)
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st.Err() // details are best effort; the code and message stand
	}
	return withDetails.Err()
}

// Info returns the ErrorInfo of our domain in err's status, if any.
func Info(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info
		}
	}
	return nil
}
