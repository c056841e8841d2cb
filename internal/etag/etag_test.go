package etag

import (
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	for v, want := range map[int64]string{1: `"1"`, 42: `"42"`, 1 << 53: `"9007199254740992"`} {
		if got := Of(v); got != want {
			t.Errorf("Of(%d) = %s, want %s", v, got, want)
		}
	}
}

func TestIfMatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  []string
		version int64
		ok      bool
	}{
		{"case=absent", nil, 0, true},
		{"case=star", []string{"*"}, 0, true},
		{"case=star with spaces", []string{" * "}, 0, true},
		{"case=one strong tag", []string{`"3"`}, 3, true},
		{"case=spaces around it", []string{" \t\"3\" "}, 3, true},
		{"case=empty list elements around it", []string{`, "3" ,`}, 3, true},
		{"case=largest version", []string{`"9223372036854775807"`}, 9223372036854775807, true},
		// Valid tags that no version has: a mismatch, not a malformed field.
		{"case=weak tag never matches", []string{`W/"3"`}, NoVersion, true},
		{"case=leading zero is another tag", []string{`"03"`}, NoVersion, true},
		{"case=plus sign", []string{`"+3"`}, NoVersion, true},
		{"case=zero", []string{`"0"`}, NoVersion, true},
		{"case=negative", []string{`"-1"`}, NoVersion, true},
		{"case=beyond int64", []string{`"9223372036854775808"`}, NoVersion, true},
		{"case=not a number", []string{`"abc"`}, NoVersion, true},
		{"case=empty tag", []string{`""`}, NoVersion, true},
		{"case=comma inside a tag", []string{`"1,2"`}, NoVersion, true},
		{"case=obs-text inside a tag", []string{"\"\x80\""}, NoVersion, true},
		// Malformed, or more than one tag.
		{"case=unquoted", []string{"3"}, 0, false},
		{"case=empty", []string{""}, 0, false},
		{"case=blank", []string{" "}, 0, false},
		{"case=unterminated", []string{`"3`}, 0, false},
		{"case=space inside", []string{`"3 4"`}, 0, false},
		{"case=control inside", []string{"\"3\x00\""}, 0, false},
		{"case=DEL inside", []string{"\"3\x7f\""}, 0, false},
		{"case=lower-case weak prefix", []string{`w/"3"`}, 0, false},
		{"case=junk after the tag", []string{`"3"x`}, 0, false},
		{"case=two tags", []string{`"3", "4"`}, 0, false},
		{"case=two header lines", []string{`"3"`, `"4"`}, 0, false},
		{"case=star in a list", []string{`*, "3"`}, 0, false},
		{"case=star on two lines", []string{"*", "*"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version, ok := IfMatch(tc.values)
			if version != tc.version || ok != tc.ok {
				t.Errorf("IfMatch(%q) = %d, %v; want %d, %v", tc.values, version, ok, tc.version, tc.ok)
			}
		})
	}
}

func TestNoneMatch(t *testing.T) {
	current := Of(3)
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"*"}, true},
		{[]string{`"3"`}, true},
		{[]string{`W/"3"`}, true}, // weak comparison
		{[]string{`"1", W/"2", "3"`}, true},
		{[]string{`"1"`, `"3"`}, true},
		{[]string{`"2"`}, false},
		{[]string{`"03"`}, false},
		{[]string{`W/"2", "4"`}, false},
		{[]string{`3`}, false},         // malformed: matches nothing
		{[]string{`"3", junk`}, false}, // the whole field is malformed
		{[]string{""}, false},
	} {
		if got := NoneMatch(tc.values, current); got != tc.want {
			t.Errorf("NoneMatch(%q, %s) = %v, want %v", strings.Join(tc.values, " | "), current, got, tc.want)
		}
	}
}
