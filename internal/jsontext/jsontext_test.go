package jsontext

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// AppendNumber writes what encoding/json and protojson write, across the
// switch to exponent form on both sides and at the extremes.
func TestAppendNumberMatchesEncoders(t *testing.T) {
	encoders := []struct {
		name    string
		marshal func(float64) ([]byte, error)
	}{
		{"encoding/json", func(f float64) ([]byte, error) { return json.Marshal(f) }},
		{"protojson", func(f float64) ([]byte, error) { return protojson.Marshal(structpb.NewNumberValue(f)) }},
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 5e-324,
		1e20, 999999999999999900000, 1e21, -1e21, 123456789012, 9007199254740993, math.MaxFloat64, -math.SmallestNonzeroFloat64} {
		got := AppendNumber(nil, f)
		for _, enc := range encoders {
			want, err := enc.marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%v: %s, %s %s", f, got, enc.name, want)
			}
		}
	}
}

// Strings are quoted as encoding/json (HTML escaping off) and protojson
// quote them, each in its own way past ASCII.
func TestAppendStringMatchesEncoders(t *testing.T) {
	cases := []string{"", "plain", "\x00\x01\x1f\b\f\n\r\t\"\\/\x7f", "<>&", "é日本😀", "\u2028\u2029", "\ufffd", "a\xffb", "\xed\xa0\x80",
		"user-1234@example.com", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", " !#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}~\x7f"}
	// Each byte that must be escaped or is not ASCII, at every place in
	// and around the 8-byte words the plain runs are checked in.
	for _, special := range []string{"\x00", "\x1f", "\"", "\\", "\x80", "é", "\xff", "\u2028"} {
		for at := range 17 {
			cases = append(cases, strings.Repeat("a", at)+special+strings.Repeat("z", 17-at))
		}
	}
	for _, s := range cases {
		checkStringMatchesEncoders(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("user-1234@example.com")
	f.Add("a long plain run, then \"quotes\", \\, \x01 and é")
	f.Fuzz(checkStringMatchesEncoders)
}

func checkStringMatchesEncoders(t *testing.T, s string) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	if got, want := string(AppendString(nil, s)), strings.TrimSuffix(buf.String(), "\n"); got != want {
		t.Errorf("%q: AppendString %s, encoding/json %s", s, got, want)
	}
	want, wantErr := protojson.Marshal(structpb.NewStringValue(s))
	got, ok := AppendProtojsonString(nil, s)
	if ok != (wantErr == nil) || (ok && string(got) != string(want)) {
		t.Errorf("%q: AppendProtojsonString %s (%v), protojson %s (%v)", s, got, ok, want, wantErr)
	}
}

// Number reads exactly the JSON number grammar, and only finite values;
// PlainString only strings written as they are.
func TestNumberAndPlainString(t *testing.T) {
	for in, want := range map[string]struct {
		f  float64
		n  int
		ok bool
	}{
		"0": {0, 1, true}, "-0": {0, 2, true}, "12,": {12, 2, true}, "1.5e3}": {1500, 5, true},
		"-2.5E-1": {-0.25, 7, true}, "01": {0, 1, true}, // a number ends where the grammar does
		"": {}, "-": {}, "+1": {}, ".5": {}, "1.": {}, "1e": {}, "1e+": {}, "x": {}, "1e400": {},
	} {
		f, n, ok := Number(in)
		if f != want.f || n != want.n || ok != want.ok {
			t.Errorf("Number(%q) = %v, %d, %v; want %v, %d, %v", in, f, n, ok, want.f, want.n, want.ok)
		}
	}
	for in, want := range map[string]struct {
		str string
		n   int
		ok  bool
	}{
		`"abc":1`: {"abc", 5, true}, `""`: {"", 2, true}, `"é日本 <&>"`: {"é日本 <&>", 14, true},
		`"a long plain ascii string"`: {"a long plain ascii string", 27, true},
		``:                            {}, `abc"`: {}, `"abc`: {}, `"a\"b"`: {}, "\"a\nb\"": {}, "\"\xff\"": {}, `"\u0061"`: {},
	} {
		str, n, ok := PlainString(in)
		if str != want.str || n != want.n || ok != want.ok {
			t.Errorf("PlainString(%q) = %q, %d, %v; want %q, %d, %v", in, str, n, ok, want.str, want.n, want.ok)
		}
	}
}
