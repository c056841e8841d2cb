package claimsjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// apiForm is what the gateway writes for claims stored as doc when they
// take the Struct path: protojson's output, compacted.
func apiForm(t testing.TB, doc string) (string, bool) {
	t.Helper()
	var s structpb.Struct
	if err := protojson.Unmarshal([]byte(doc), &s); err != nil {
		return "", false
	}
	out, err := protojson.Marshal(&s)
	if err != nil {
		return "", false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.String(), true
}

// storedForm is claims as the service stores them: encoding/json without
// HTML escaping, keys sorted.
func storedForm(t *testing.T, claims map[string]any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(claims); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// checkAdd adds stored for a user and, when Add takes it, asserts that
// the text kept is exactly what the Struct path writes; a refusal must
// leave the texts as they were.
func checkAdd(t testing.TB, stored string) bool {
	t.Helper()
	var texts Texts
	texts.Add(&usersv1.User{Id: "before"}, `{"a":1}`)
	before := string(texts.buf)
	u := &usersv1.User{Id: "u"}
	if !texts.Add(u, stored) {
		if string(texts.buf) != before || len(texts.users) != 1 {
			t.Fatalf("%q: refused, but the texts changed: %q", stored, texts.buf)
		}
		return false
	}
	got, ok := texts.Of(u)
	if !ok {
		t.Fatalf("%q: taken, but Of has nothing for the user", stored)
	}
	want, valid := apiForm(t, stored)
	if !valid {
		t.Fatalf("%q: taken, but protojson refuses it", stored)
	}
	if string(got) != want {
		t.Fatalf("%q:\n kept %s\nwants %s", stored, got, want)
	}
	return true
}

// The claims the service stores are kept in the form the gateway writes,
// numbers respelled as protojson spells them.
func TestAddKeepsTheGatewaysForm(t *testing.T) {
	for _, claims := range []map[string]any{
		{},
		{"email": "ana@example.org", "name": "Ana", "tier": 3, "vip": true, "note": nil},
		{"a": map[string]any{"b": map[string]any{"c": []any{1, "x", nil, false, map[string]any{"d": []any{}}, []any{}}}}, "e": map[string]any{}},
		{"z": 1, "a": 2, "M": 3, "ä": 4, "a.b": 5, "$where": 6, "": 7, "日本": "語", "emoji": "😀 <&>"},
		{"n": []any{0, 1, -1, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789012, 9007199254740993.0, -1.5e-300, 1.7976931348623157e308, 5e-324}},
		{"givenName": "Patrick John", "familyName": "Smith", "dob": "1990-06-01", "url": "https://x.example/?a=b&c=<d>"},
	} {
		stored := storedForm(t, claims)
		if !checkAdd(t, stored) {
			t.Errorf("%s: refused", stored)
		}
	}
}

// What Add cannot vouch for is left to the Struct path.
func TestAddRefuses(t *testing.T) {
	for _, stored := range []string{
		``, `null`, `[]`, `"x"`, `{`, `{"a":1`, `{"a":1}x`, `{"a":1} `,
		` {}`, `{ }`, `{"a": 1}`, `{"a":1 ,"b":2}`, "{\"a\":\n1}",
		`{"b":1,"a":2}`, `{"a":1,"a":2}`, // unsorted, duplicate
		`{"a":"\n"}`, `{"a":"\u2028"}`, `{"a":"\""}`, `{"a":"\/"}`, `{"\u0061":1}`, // escapes
		"{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"\xc3\":1}", // control, invalid UTF-8
		`{"a":01}`, `{"a":+1}`, `{"a":.5}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`, `{"a":1e400}`, `{"a":NaN}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b":1,}}`,
		strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33), // deeper than maxDepth
		`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`,
	} {
		if checkAdd(t, stored) {
			t.Errorf("%q: taken", stored)
		}
	}
	// Nesting up to maxDepth is taken.
	deep := strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat(`}`, maxDepth)
	if !checkAdd(t, deep) {
		t.Errorf("%d levels: refused", maxDepth)
	}
}

// Whatever Add takes, it keeps as the Struct path writes it.
func FuzzAdd(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2.5,-0,1e21,1E-7,true,false,null,"x"],"b":{"c":{}}}`,
		`{"a":1,"a":2}`, `{"b":1,"a":2}`, `{"a":"\u00e9"}`, `{"é":"日本"}`, `{"a":100000000000000000000000}`,
		`{"a":0.000001}`, `{"a":-0.0}`, `{"a":1e400}`, `{"":""}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		checkAdd(t, stored)
	})
}

// Of finds each user's claims, in the order added or any other; a user
// that was not added, and a nil Texts, have none.
func TestOf(t *testing.T) {
	var texts Texts
	users := []*usersv1.User{{Id: "a"}, {Id: "b"}, {Id: "c"}}
	for i, u := range users {
		if !texts.Add(u, `{"n":`+string(rune('1'+i))+`}`) {
			t.Fatal("refused")
		}
	}
	for _, i := range []int{0, 1, 2, 2, 0, 1, 1} {
		got, ok := texts.Of(users[i])
		if want := `{"n":` + string(rune('1'+i)) + `}`; !ok || string(got) != want {
			t.Errorf("user %d: %q %v, want %q", i, got, ok, want)
		}
	}
	if _, ok := texts.Of(&usersv1.User{Id: "a"}); ok {
		t.Error("another user with the same id has claims")
	}
	if _, ok := (*Texts)(nil).Of(users[0]); ok {
		t.Error("a nil Texts has claims")
	}
	texts.Reset()
	if _, ok := texts.Of(users[0]); ok {
		t.Error("claims outlive Reset")
	}
}

// SetClaims gives every user it holds claims for its Claims, as protojson
// reads them, and then holds none.
func TestSetClaims(t *testing.T) {
	var texts Texts
	a, b := &usersv1.User{Id: "a"}, &usersv1.User{Id: "b"}
	texts.Add(a, `{"email":"a@example.org","n":[1,{"x":null}]}`)
	texts.Add(b, `{}`)
	if err := texts.SetClaims(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		u    *usersv1.User
		want string
	}{{a, `{"email":"a@example.org","n":[1,{"x":null}]}`}, {b, `{}`}} {
		got, err := protojson.Marshal(tc.u.GetClaims())
		if err != nil || tc.u.Claims == nil {
			t.Fatalf("%s: %v", tc.u.Id, err)
		}
		var buf bytes.Buffer
		_ = json.Compact(&buf, got)
		if buf.String() != tc.want {
			t.Errorf("%s: claims %s, want %s", tc.u.Id, buf.String(), tc.want)
		}
	}
	if _, ok := texts.Of(a); ok {
		t.Error("SetClaims kept the texts")
	}
	if err := (*Texts)(nil).SetClaims(); err != nil {
		t.Error(err)
	}
	// Text protojson cannot read (Add never keeps such) is an error.
	texts.buf = append(texts.buf[:0], `{"a":`...)
	texts.users = append(texts.users[:0], entry{user: a, end: len(texts.buf)})
	if err := texts.SetClaims(); err == nil {
		t.Error("SetClaims took text that is not JSON")
	}
}

// A request's texts come back from its context.
func TestContext(t *testing.T) {
	if FromContext(t.Context()) != nil {
		t.Fatal("a context without texts has some")
	}
	var texts Texts
	if got := FromContext(NewContext(t.Context(), &texts)); got != &texts {
		t.Fatalf("FromContext = %p, want %p", got, &texts)
	}
}
