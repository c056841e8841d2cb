package rpcerr

import (
	"errors"
	"net/http"
	"testing"

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
		{status.Error(codes.PermissionDenied, "x"), "Forbidden"},
		{status.Error(codes.AlreadyExists, "x"), "Conflict"},
		{status.Error(codes.FailedPrecondition, "x"), "PreconditionFailed"},
		{status.Error(codes.ResourceExhausted, "x"), "TooManyRequests"},
		{status.Error(codes.DataLoss, "x"), "InternalServerError"},
		{errors.New("plain"), "InternalServerError"},
		{Rejected("413"), "PayloadTooLarge"},
		{Rejected("415"), "UnsupportedMediaType"},
		{Rejected("400"), "BadRequest"},
		// A mark with a status the gateway never sends is a plain 400.
		{Rejected("500"), "BadRequest"},
		{Rejected("nonsense"), "BadRequest"},
	} {
		if got := CodeWord(tc.err); got != tc.want {
			t.Errorf("CodeWord(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestWordFallsBackToStatusText(t *testing.T) {
	if got := Word(http.StatusRequestHeaderFieldsTooLarge); got != "RequestHeaderFieldsTooLarge" {
		t.Fatalf("Word(431) = %q", got)
	}
}
