package e2e

import (
	"encoding/json"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// A reflection client that knows no types of its own (as grpcurl) renders
// the error details: the google.rpc types usersd sends are served by
// symbol through server reflection, and what is served decodes them.
func TestReflectionResolvesErrorDetails(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	stream, err := reflectionpb.NewServerReflectionClient(bareConn(t, s)).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Each answer holds the file and those of its dependencies not sent
	// before on the stream.
	var served descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	for _, symbol := range []string{"google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo"} {
		err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("%s: %s", symbol, e.GetErrorMessage())
		}
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(raw, fd); err != nil {
				t.Fatal(err)
			}
			if !seen[fd.GetName()] {
				seen[fd.GetName()] = true
				served.File = append(served.File, fd)
			}
		}
	}
	files, err := protodesc.NewFiles(&served)
	if err != nil {
		t.Fatalf("the served files do not stand on their own: %v", err)
	}

	_, err = s.grpc().GetUser(t.Context(), &usersv1.GetUserRequest{Id: "not-a-uuid"})
	rendered, err := protojson.MarshalOptions{Resolver: dynamicpb.NewTypes(files)}.Marshal(status.Convert(err).Proto())
	if err != nil {
		t.Fatalf("details cannot be rendered with the served types: %v", err)
	}
	var got struct {
		Details []struct {
			Type            string `json:"@type"`
			Reason          string `json:"reason"`
			FieldViolations []struct{ Field string }
		}
	}
	if err := json.Unmarshal(rendered, &got); err != nil {
		t.Fatal(err)
	}
	var reason, field string
	for _, d := range got.Details {
		switch d.Type {
		case "type.googleapis.com/google.rpc.ErrorInfo":
			reason = d.Reason
		case "type.googleapis.com/google.rpc.BadRequest":
			if len(d.FieldViolations) == 1 {
				field = d.FieldViolations[0].Field
			}
		}
	}
	if reason != "INVALID_ARGUMENT" || field != "id" {
		t.Fatalf("rendered %s", rendered)
	}
}
