package rpcerr

import (
	"errors"
	"net/http"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNewCarriesOurErrorInfo(t *testing.T) {
	st := status.Convert(New(codes.NotFound, "User not found", "USER_NOT_FOUND"))
	info := Info(st)
	if st.Code() != codes.NotFound || st.Message() != "User not found" || info == nil || info.GetReason() != "USER_NOT_FOUND" {
		t.Fatalf("status %v, info %v", st, info)
	}
	if Info(status.New(codes.NotFound, "x")) != nil {
		t.Fatal("a status without details has our ErrorInfo")
	}
}

func TestCodeWord(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.InvalidArgument, "x"), "BadRequest"},
		{New(codes.NotFound, "x", "USER_NOT_FOUND"), "NotFound"},
		{status.Error(codes.PermissionDenied, "x"), "Forbidden"},
		{status.Error(codes.AlreadyExists, "x"), "Conflict"},
		{status.Error(codes.FailedPrecondition, "x"), "PreconditionFailed"},
		{status.Error(codes.ResourceExhausted, "x"), "TooManyRequests"},
		{status.Error(codes.DataLoss, "x"), "InternalServerError"},
		{errors.New("plain"), "InternalServerError"},
		{Rejected(ReasonPayloadTooLarge), "PayloadTooLarge"},
		{Rejected(ReasonUnsupportedMediaType), "UnsupportedMediaType"},
		{Rejected(ReasonMalformedBody), "BadRequest"},
		{Rejected(ReasonInvalidBody), "BadRequest"},
		{Rejected(ReasonInvalidParameters), "BadRequest"},
		// A reason the gateway never sends is its code's: a plain 400.
		{Rejected("nonsense"), "BadRequest"},
		// A reason decides the status only in our domain.
		{withInfo(t, codes.InvalidArgument, &errdetails.ErrorInfo{Reason: ReasonPayloadTooLarge, Domain: "elsewhere"}), "BadRequest"},
	} {
		if got := CodeWord(tc.err); got != tc.want {
			t.Errorf("CodeWord(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func withInfo(t *testing.T, code codes.Code, info *errdetails.ErrorInfo) error {
	t.Helper()
	st, err := status.New(code, "x").WithDetails(info)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// Each of the gateway's refusals is its own reason, with its own status.
func TestRejectedReasons(t *testing.T) {
	for reason, want := range map[string]int{
		ReasonUnsupportedMediaType: http.StatusUnsupportedMediaType,
		ReasonPayloadTooLarge:      http.StatusRequestEntityTooLarge,
		ReasonMalformedBody:        http.StatusBadRequest,
		ReasonInvalidBody:          http.StatusBadRequest,
		ReasonInvalidParameters:    http.StatusBadRequest,
	} {
		st := status.Convert(Rejected(reason))
		info := Info(st)
		if st.Code() != codes.InvalidArgument || info.GetReason() != reason {
			t.Errorf("Rejected(%s) = %v with %v", reason, st, info)
		}
		if got := HTTPStatus(st.Code(), info); got != want {
			t.Errorf("HTTPStatus of Rejected(%s) = %d, want %d", reason, got, want)
		}
	}
}

func TestWordFallsBackToStatusText(t *testing.T) {
	if got := Word(http.StatusRequestHeaderFieldsTooLarge); got != "RequestHeaderFieldsTooLarge" {
		t.Fatalf("Word(431) = %q", got)
	}
}
