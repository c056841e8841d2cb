package service

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
)

func fields(vs violations) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Field
	}
	return out
}

func TestCheckProvider(t *testing.T) {
	valid := &usersv1.AuthenticationProvider{
		ProviderId: "41458E5A-9092-40B7-9A26-D4EB43C5792F",
		Url:        "https://example-university.au.auth0.com",
		SubjectId:  "example-university-oauth2|123456789",
	}
	t.Run("case=valid, provider id canonicalised", func(t *testing.T) {
		var vs violations
		got := checkProvider(&vs, "p", valid)
		if len(vs) != 0 || got.ProviderId != "41458e5a-9092-40b7-9a26-d4eb43c5792f" {
			t.Fatalf("violations %v, provider id %q", vs, got.ProviderId)
		}
	})
	for _, tc := range []struct {
		name string
		p    *usersv1.AuthenticationProvider
		want []string
	}{
		{"case=all missing", &usersv1.AuthenticationProvider{}, []string{"p.provider_id", "p.url", "p.subject_id"}},
		{"case=bad uuid", &usersv1.AuthenticationProvider{ProviderId: "nope", Url: valid.Url, SubjectId: "s"}, []string{"p.provider_id"}},
		{"case=relative url", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: "/login", SubjectId: "s"}, []string{"p.url"}},
		{"case=ftp url", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: "ftp://x.example", SubjectId: "s"}, []string{"p.url"}},
		{"case=url without host", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: "https://", SubjectId: "s"}, []string{"p.url"}},
		{"case=url with space", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: "https://a b.example", SubjectId: "s"}, []string{"p.url"}},
		{"case=url too long", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: "https://x.example/" + strings.Repeat("a", 2048), SubjectId: "s"}, []string{"p.url"}},
		{"case=subject too long", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: valid.Url, SubjectId: strings.Repeat("s", 257)}, []string{"p.subject_id"}},
		{"case=subject C0 control", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: valid.Url, SubjectId: "a\nb"}, []string{"p.subject_id"}},
		{"case=subject DEL", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: valid.Url, SubjectId: "a\x7fb"}, []string{"p.subject_id"}},
		{"case=subject C1 control", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: valid.Url, SubjectId: "a\u0085b"}, []string{"p.subject_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs violations
			checkProvider(&vs, "p", tc.p)
			if got := fields(vs); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("violations on %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("case=subject of exactly 256 bytes is fine", func(t *testing.T) {
		var vs violations
		checkProvider(&vs, "p", &usersv1.AuthenticationProvider{ProviderId: valid.ProviderId, Url: valid.Url, SubjectId: strings.Repeat("é", 128)})
		if len(vs) != 0 {
			t.Fatal(vs)
		}
	})
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nested returns a claims object of the given depth (the object itself is 1).
func nested(depth int) map[string]any {
	m := map[string]any{"leaf": true}
	for i := 1; i < depth; i++ {
		m = map[string]any{"n": m}
	}
	return m
}

func TestCheckClaims(t *testing.T) {
	lim := DefaultLimits
	for _, tc := range []struct {
		name   string
		claims *structpb.Struct
		want   []string
	}{
		{"case=nil is empty", nil, nil},
		{"case=depth 10 is fine", mustStruct(t, nested(10)), nil},
		{"case=depth 11 is refused", mustStruct(t, nested(11)), []string{"c.n.n.n.n.n.n.n.n.n.n"}},
		{"case=arrays add depth", mustStruct(t, map[string]any{"a": []any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{[]any{1}}}}}}}}}}}), []string{"c.a[0][0][0][0][0][0][0][0][0]"}},
		{"case=empty key", mustStruct(t, map[string]any{"": 1}), []string{"c"}},
		{"case=2^53 is fine", mustStruct(t, map[string]any{"n": float64(1 << 53)}), nil},
		{"case=beyond 2^53", mustStruct(t, map[string]any{"n": float64(1<<53) * 2}), []string{"c.n"}},
		{"case=NaN", &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.NaN())}}, []string{"c.x"}},
		{"case=Inf nested", &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(math.Inf(-1))}})}}, []string{"c.x[0]"}},
		{"case=value without kind", &structpb.Struct{Fields: map[string]*structpb.Value{"x": {}}}, []string{"c.x"}},
		{"case=too large", mustStruct(t, map[string]any{"big": strings.Repeat("x", 16<<10)}), []string{"c"}},
		{"case=all violations, sorted", mustStruct(t, map[string]any{"b": float64(1 << 60), "a": float64(-(1 << 60))}), []string{"c.a", "c.b"}},
		{"case=U+0000 in a string", mustStruct(t, map[string]any{"s": "a\x00b"}), []string{"c.s"}},
		{"case=U+0000 alone", mustStruct(t, map[string]any{"s": "\x00"}), []string{"c.s"}},
		{"case=U+0000 in a nested string", mustStruct(t, map[string]any{"a": map[string]any{"b": []any{"ok", "x\x00"}}}), []string{"c.a.b[1]"}},
		{"case=U+0000 in a key, at the object holding it", mustStruct(t, map[string]any{"a": map[string]any{"k\x00": 1}}), []string{"c.a"}},
		{"case=U+0000 in a top-level key", mustStruct(t, map[string]any{"\x00": "v"}), []string{"c"}},
		{"case=other control characters are data", mustStruct(t, map[string]any{"s\x01": "\x01\t\n\x7f\u0080"}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs violations
			out := checkClaims(&vs, "c", tc.claims, lim)
			if got := fields(vs); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("violations on %v, want %v", got, tc.want)
			}
			if len(tc.want) == 0 && out == nil {
				t.Fatal("valid claims returned no encoding")
			}
		})
	}
	t.Run("case=size limit is exact", func(t *testing.T) {
		// {"k":"xxx…"} is 8 bytes of framing around the string.
		exact := mustStruct(t, map[string]any{"k": strings.Repeat("x", lim.MaxClaimsBytes-8)})
		var vs violations
		if out := checkClaims(&vs, "c", exact, lim); len(vs) != 0 || len(out) != lim.MaxClaimsBytes {
			t.Fatalf("violations %v, encoded %d bytes", vs, len(out))
		}
		over := mustStruct(t, map[string]any{"k": strings.Repeat("x", lim.MaxClaimsBytes-7)})
		if checkClaims(&vs, "c", over, lim); len(vs) != 1 {
			t.Fatalf("one byte over: violations %v", vs)
		}
	})
}

func TestEncodeClaimsIsCanonical(t *testing.T) {
	got := encodeClaims(mustStruct(t, map[string]any{"b": "<&>", "a": 1.5, "c": []any{true, nil}}))
	if want := `{"a":1.5,"b":"<&>","c":[true,null]}`; string(got) != want {
		t.Fatalf("encodeClaims = %s, want %s", got, want)
	}
	back, err := decodeClaims(string(got))
	if err != nil || back.Fields["b"].GetStringValue() != "<&>" {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

func TestPageSize(t *testing.T) {
	i := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		in   *int32
		want int
		bad  bool
	}{{nil, 100, false}, {i(1), 1, false}, {i(1000), 1000, false}, {i(0), 0, true}, {i(-1), 0, true}, {i(1001), 0, true}} {
		var vs violations
		got := pageSize(&vs, tc.in)
		if (len(vs) > 0) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("pageSize(%v) = %d, %v", tc.in, got, vs)
		}
	}
}

// A request with a huge number of bad inputs gets the first
// rpcerr.MaxViolations of them, in the order they are checked.
func TestViolationsAreCapped(t *testing.T) {
	claims := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := range 150_000 {
		claims.Fields[fmt.Sprintf("k%06d", i)] = structpb.NewNumberValue(math.Inf(1))
	}
	s := &Users{limits: DefaultLimits}
	_, err := s.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{
		Id: "x", Claims: claims, AuthenticationProvider: &usersv1.AuthenticationProvider{Url: "nope"},
	}})
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("err %v, want a validation error", err)
	}
	got := fields(ve.Violations)
	if len(got) != rpcerr.MaxViolations {
		t.Fatalf("%d violations, want %d", len(got), rpcerr.MaxViolations)
	}
	if got[0] != "user.id" || got[1] != "user.claims.k000000" || got[49] != "user.claims.k000048" {
		t.Fatalf("violations %v..., want user.id then the first claims", got[:3])
	}
}
