// Package rpcerr builds the gRPC statuses usersd returns: a code, a message
// written for clients, and an ErrorInfo naming the reason in our domain.
// The REST gateway shows a status message verbatim only when it carries
// this domain, so text from elsewhere (transport, decoding) never leaks.
package rpcerr

import (
	"net/http"
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

// Reasons of the refusals the REST gateway decides on HTTP grounds. It
// still sends such a request, with an empty body and the reason under
// RejectedMetadata, so that the call is authenticated, recorded in
// analytic events and authorized before it fails with Rejected(reason).
const (
	// ReasonUnsupportedMediaType: the body is not JSON, or is encoded.
	ReasonUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	// ReasonPayloadTooLarge: the body is over the size limit.
	ReasonPayloadTooLarge = "PAYLOAD_TOO_LARGE"
	// ReasonMalformedBody: the body as a whole is not a JSON object, or
	// could not be read.
	ReasonMalformedBody = "MALFORMED_BODY"
	// ReasonInvalidBody: inputs in the body are wrong: malformed, unknown
	// fields, of the wrong type, numbers beyond ±2^53.
	ReasonInvalidBody = "INVALID_BODY"
	// ReasonInvalidParameters: a path or query parameter is not
	// percent-encoded UTF-8, or not of its field's type.
	ReasonInvalidParameters = "INVALID_PARAMETERS"
)

// RejectedMetadata is the metadata key under which the REST gateway names
// the reason it refused a request. The server honours it only on calls
// over the gateway's in-process channel: a native client cannot plant a
// refusal.
const RejectedMetadata = "usersd-rejected"

// Rejected is the error of a call the REST gateway refused for reason.
func Rejected(reason string) error {
	return New(codes.InvalidArgument, "Request rejected", reason)
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

// reasonStatus are the REST statuses of the reasons that decide one
// themselves: the gateway's refusals, all INVALID_ARGUMENT on gRPC.
var reasonStatus = map[string]int{
	ReasonUnsupportedMediaType: http.StatusUnsupportedMediaType,
	ReasonPayloadTooLarge:      http.StatusRequestEntityTooLarge,
	ReasonMalformedBody:        http.StatusBadRequest,
	ReasonInvalidBody:          http.StatusBadRequest,
	ReasonInvalidParameters:    http.StatusBadRequest,
}

// HTTPStatus is the REST status of a status with code and our ErrorInfo
// (nil if it has none): its reason's, if that decides one, else its
// code's (500 for codes without one).
func HTTPStatus(code codes.Code, info *errdetails.ErrorInfo) int {
	if s, ok := reasonStatus[info.GetReason()]; ok {
		return s
	}
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

// CodeWord is the contract's error code of an error as REST shows it, which
// analytic events record for both transports.
func CodeWord(err error) string {
	st := status.Convert(err)
	return Word(HTTPStatus(st.Code(), Info(st)))
}
