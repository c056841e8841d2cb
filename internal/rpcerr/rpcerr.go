// Package rpcerr builds the gRPC statuses usersd returns: a code, a message
// written for clients, and an ErrorInfo naming the reason in our domain.
// The REST gateway shows a status message verbatim only when it carries
// this domain, so text from elsewhere (transport, decoding) never leaks.
package rpcerr

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
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
	// ReasonRejected: the REST gateway refused the request on HTTP
	// grounds (media type, size, JSON); its ErrorInfo metadata holds the
	// HTTP status under "httpStatus".
	ReasonRejected = "REQUEST_REJECTED"
	// ReasonUnavailable: the call cannot be served right now (the
	// database cannot be written, the event buffer has no room); the
	// same call may succeed after the RetryInfo delay.
	ReasonUnavailable = "UNAVAILABLE"
)

// RetryAfter is the delay an UNAVAILABLE call's RetryInfo suggests, the
// same as the Retry-After the REST gateway sends with a 503.
const RetryAfter = time.Second

// Unavailable is the error of a call refused because the service cannot
// serve it right now: UNAVAILABLE with a RetryInfo (REST: 503 with
// Retry-After). Nothing of the call took effect.
func Unavailable(msg string) error {
	return New(codes.Unavailable, msg, ReasonUnavailable,
		&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)})
}

// MaxViolations bounds the field violations of one error (the first ones
// found), on both transports: a request with a huge number of bad inputs
// must not produce a response of its size.
const MaxViolations = 50

// RejectedMetadata is the metadata key by which the REST gateway marks a
// request it refused (value: the HTTP status), so the call still passes
// authentication, analytic events and authorization before failing.
const RejectedMetadata = "usersd-rejected"

// rejectable are the statuses a gateway refusal may carry.
var rejectable = map[string]bool{"400": true, "413": true, "415": true}

// Rejected is the error of a call the gateway refused with httpStatus.
func Rejected(httpStatus string) error {
	if !rejectable[httpStatus] {
		httpStatus = "400"
	}
	st := status.New(codes.InvalidArgument, "Request rejected")
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonRejected, Domain: Domain, Metadata: map[string]string{"httpStatus": httpStatus},
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

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

// httpStatus is our gRPC → HTTP table; grpc-gateway's default disagrees
// with the contract (FAILED_PRECONDITION → 400, UNIMPLEMENTED → 501, …).
var httpStatus = map[codes.Code]int{
	codes.OK:                 http.StatusOK,
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.NotFound:           http.StatusNotFound,
	codes.Unimplemented:      http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.Aborted:            http.StatusConflict,
	codes.FailedPrecondition: http.StatusPreconditionFailed,
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusServiceUnavailable,
	codes.Canceled:           http.StatusServiceUnavailable,
}

// HTTPStatus is the REST status of a gRPC code (500 for the rest).
func HTTPStatus(code codes.Code) int {
	if s, ok := httpStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// words are the contract's error code words by HTTP status.
var words = map[int]string{
	http.StatusBadRequest:            "BadRequest",
	http.StatusUnauthorized:          "Unauthorized",
	http.StatusForbidden:             "Forbidden",
	http.StatusNotFound:              "NotFound",
	http.StatusMethodNotAllowed:      "MethodNotAllowed",
	http.StatusConflict:              "Conflict",
	http.StatusPreconditionFailed:    "PreconditionFailed",
	http.StatusRequestEntityTooLarge: "PayloadTooLarge",
	http.StatusUnsupportedMediaType:  "UnsupportedMediaType",
	http.StatusTooManyRequests:       "TooManyRequests",
	http.StatusInternalServerError:   "InternalServerError",
	http.StatusServiceUnavailable:    "ServiceUnavailable",
}

// Word is the contract's error code for an HTTP status ("NotFound").
func Word(status int) string {
	if w, ok := words[status]; ok {
		return w
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// CodeWord is the contract's error code of an error as REST shows it (and
// analytic events record it): from the HTTP status a gateway refusal
// carries, else from the gRPC code.
func CodeWord(err error) string {
	st := status.Convert(err)
	if info := Info(st); info != nil && info.GetReason() == ReasonRejected {
		if n, err := strconv.Atoi(info.GetMetadata()["httpStatus"]); err == nil {
			return Word(n)
		}
	}
	return Word(HTTPStatus(st.Code()))
}
