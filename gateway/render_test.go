package gateway

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// checkRender asserts that the gateway's marshaler writes v exactly as
// its protojson path does: the same bytes, or an error from both. With
// rendered, renderUsers must have written it itself: the marshaler falls
// back to protojson, so the bytes alone would not tell.
func checkRender(t *testing.T, v proto.Message, rendered bool) {
	t.Helper()
	m := newMarshaler()
	if _, ok := renderUsers(nil, v, nil); rendered && !ok {
		t.Fatalf("%v: renderUsers declined it", v)
	}
	want, wantErr := m.marshalCompact(v)
	got, gotErr := m.Marshal(v)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%v: error %v, protojson's %v", v, gotErr, wantErr)
	}
	if string(got) != string(want) {
		t.Fatalf("%v:\n rendered %s\nprotojson %s", v, got, want)
	}
	// The same through a lent buffer that held an earlier response.
	rb := &renderBuffer{b: append(make([]byte, 0, 8), "stale page"...), msg: v}
	got, gotErr = m.Marshal(rb)
	if (gotErr == nil) != (wantErr == nil) || string(got) != string(want) {
		t.Fatalf("%v, in a lent buffer:\n rendered %s (%v)\nprotojson %s (%v)", v, got, gotErr, want, wantErr)
	}
	// The same with the claims handed over as text (claimsjson), where
	// the texts take them, and on a Claims where they do not.
	v = proto.Clone(v)
	rb = &renderBuffer{msg: v}
	for _, u := range usersIn(v) {
		if u == nil || u.Claims == nil {
			continue
		}
		stored, err := m.marshalCompact(u.Claims)
		if err != nil {
			continue
		}
		if rb.claims.Add(u, string(stored)) {
			u.Claims = nil
		}
	}
	got, gotErr = m.Marshal(rb)
	if (gotErr == nil) != (wantErr == nil) || string(got) != string(want) {
		t.Fatalf("%v, with claims as text:\n rendered %s (%v)\nprotojson %s (%v)", v, got, gotErr, want, wantErr)
	}
}

// usersIn returns the users a response carries.
func usersIn(v proto.Message) []*usersv1.User {
	if u, ok := v.(*usersv1.User); ok {
		return []*usersv1.User{u}
	}
	users, _, _ := pageOf(v)
	return users
}

func claimsOf(t *testing.T, doc string) *structpb.Struct {
	t.Helper()
	var s structpb.Struct
	if err := protojson.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return &s
}

// Every shape of user and page the API returns renders as protojson
// renders it, escapes and number spellings included.
func TestRenderUsersMatchesProtojson(t *testing.T) {
	link := &usersv1.AuthenticationProvider{ProviderId: "41458e5a-9092-40b7-9a26-d4eb43c5792f", Url: "https://idp.example.com/a?b=c&d=<e>", SubjectId: "sub|\"1\"\\"}
	docs := []string{
		`{}`,
		`{"email":"ana@example.org","name":"Ana","tier":3,"vip":true,"note":null}`,
		`{"a":{"b":{"c":[1,"x",null,false,{"d":[]},[]]}},"e":{}}`,
		`{"z":1,"a":2,"M":3,"ä":4,"a.b":5,"$where":6,"":7}`,
		`{"n":[0,-0,1,-1,0.1,1e20,1e21,1e-6,1e-7,123456789012,9007199254740992,-1.5e-300,1.7976931348623157e308,5e-324]}`,
		`{"s":"\u0000\u0001\u001f\b\f\n\r\t\"\\/\u007f\u2028\u2029\ufffd<>&é日本 😀"}`,
		`{"\n\"key\\":"v"}`,
	}
	for _, doc := range docs {
		claims := claimsOf(t, doc)
		checkRender(t, &usersv1.User{Id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Claims: claims}, true)
		checkRender(t, &usersv1.User{Id: "x", Claims: claims, AuthenticationProvider: link}, true)
	}
	next := "opaque-cursor_1"
	users := []*usersv1.User{
		{Id: "a", Claims: claimsOf(t, `{"k":"v"}`)},
		{Id: "b", Claims: &structpb.Struct{}, AuthenticationProvider: link},
		{Id: "c"}, // no claims: omitted, as protojson omits an unset message
		{},        // an empty id is still written (EmitDefaultValues)
	}
	for _, v := range []proto.Message{
		&usersv1.User{},
		&usersv1.User{AuthenticationProvider: &usersv1.AuthenticationProvider{}},
		&usersv1.ListUsersResponse{},
		&usersv1.ListUsersResponse{Data: users},
		&usersv1.ListUsersResponse{Data: users, NextCursor: &next},
		&usersv1.SearchUsersResponse{},
		&usersv1.SearchUsersResponse{Data: users[:1], NextCursor: &next},
		&usersv1.SearchUsersResponse{NextCursor: new(string)},
	} {
		checkRender(t, v, true)
	}
}

// What protojson refuses or judges itself is left to it: renderUsers
// declines, and the marshaler's answer is protojson's.
func TestRenderUsersDeclinesWhatProtojsonJudges(t *testing.T) {
	deep := structpb.NewStructValue(&structpb.Struct{})
	for range maxRenderDepth + 2 {
		deep = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{deep}})
	}
	cases := map[string]*usersv1.User{
		"NaN":                  {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}},
		"infinity":             {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.Inf(-1))}}},
		"invalid UTF-8 value":  {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"s": {Kind: &structpb.Value_StringValue{StringValue: "a\xffb"}}}}},
		"invalid UTF-8 key":    {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"\xc0": structpb.NewNullValue()}}},
		"invalid UTF-8 id":     {Id: "\xff"},
		"invalid UTF-8 link":   {AuthenticationProvider: &usersv1.AuthenticationProvider{SubjectId: "\xed\xa0\x80"}},
		"a Value with no kind": {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {}}}},
		"a nil Struct value":   {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {Kind: &structpb.Value_StructValue{}}}}},
		"a nil number kind":    {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {Kind: (*structpb.Value_NumberValue)(nil)}}}},
		"a nil string kind":    {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {Kind: (*structpb.Value_StringValue)(nil)}}}},
		"a nil Value":          {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": nil}}},
		"a nil list value":     {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {Kind: &structpb.Value_ListValue{}}}}},
		"deeper than the cap":  {Claims: &structpb.Struct{Fields: map[string]*structpb.Value{"v": deep}}},
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			if out, ok := renderUsers(nil, u, nil); ok {
				t.Fatalf("rendered %s, want it left to protojson", out)
			}
			if _, ok := renderUsers(nil, &usersv1.ListUsersResponse{Data: []*usersv1.User{{Id: "ok"}, u}}, nil); ok {
				t.Fatal("a page holding it was rendered, want it left to protojson")
			}
			checkRender(t, u, false)
			// protojson writes the page's other users' claims too, when
			// they were handed over as text.
			withClaims := &usersv1.User{Id: "ok", Claims: claimsOf(t, `{"email":"a@example.org","n":[1,2]}`)}
			checkRender(t, &usersv1.ListUsersResponse{Data: []*usersv1.User{withClaims, u}}, false)
		})
	}
	if _, ok := renderUsers(nil, &usersv1.ListUsersResponse{Data: []*usersv1.User{nil}}, nil); ok {
		t.Error("a page holding a nil user was rendered")
	}
	for _, v := range []any{(*usersv1.User)(nil), (*usersv1.ListUsersResponse)(nil), (*usersv1.SearchUsersResponse)(nil), &emptypb.Empty{}, &usersv1.ListEventsResponse{}, map[string]string{}} {
		if out, ok := renderUsers(nil, v, nil); ok {
			t.Errorf("%T rendered as %s, want it left to protojson", v, out)
		}
	}
}

// Any claims protojson can read, with any id, link and cursor, render as
// protojson renders them.
func FuzzRenderUsers(f *testing.F) {
	f.Add(`{"a":[1,2.5,"x",{"b":null}],"c":true}`, "id", "sub", "cursor")
	f.Add(`{"\u2028":"\u0007","k":-0.0000001}`, "", "\x7f", "")
	f.Add(`{"n":1e300,"m":{"":[[],{}]}}`, "é", "\"\\", "x")
	f.Fuzz(func(t *testing.T, claims, id, subject, cursor string) {
		var s structpb.Struct
		if err := protojson.Unmarshal([]byte(claims), &s); err != nil {
			return
		}
		u := &usersv1.User{Id: id, Claims: &s}
		if strings.HasPrefix(subject, "s") {
			u.AuthenticationProvider = &usersv1.AuthenticationProvider{ProviderId: id, Url: cursor, SubjectId: subject}
		}
		// Claims protojson read are valid, so the renderer leaves to
		// protojson only invalid UTF-8 in the fuzzed strings and nesting
		// past its cap (fewer brackets than the cap rule that out).
		rendered := utf8.ValidString(id) && utf8.ValidString(subject) && utf8.ValidString(cursor) &&
			strings.Count(claims, "[")+strings.Count(claims, "{") <= maxRenderDepth
		checkRender(t, u, rendered)
		checkRender(t, &usersv1.ListUsersResponse{Data: []*usersv1.User{u, u}, NextCursor: &cursor}, rendered)
		checkRender(t, &usersv1.SearchUsersResponse{Data: []*usersv1.User{u}}, rendered)
	})
}
