package rules

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBeyondExact(t *testing.T) {
	for num, want := range map[string]bool{
		"0": false, "-0": false, "0.000e999999999999": false, "1e-400": false,
		"9007199254740992": false, "-9007199254740992.0": false, "9.007199254740992e15": false,
		"90071992547409920e-1": false, "9007199254740991.5": false,
		"9007199254740993": true, "-9007199254740993": true, "9007199254740992.000001": true,
		"9007199254741000": true, "0.9007199254740993e16": true, "1e400": true, "-1e400": true,
		"12345678901234567890": true, "1e99999999999999999999": true,
	} {
		if got := BeyondExactLiteral([]byte(num)); got != want {
			t.Errorf("BeyondExactLiteral(%s) = %v, want %v", num, got, want)
		}
	}
	for f, want := range map[float64]bool{
		0: false, 1 << 53: false, -(1 << 53): false, 1<<53 + 2: true, -1e300: true,
		math.Inf(1): true, math.NaN(): false,
	} {
		if got := BeyondExactFloat(f); got != want {
			t.Errorf("BeyondExactFloat(%v) = %v, want %v", f, got, want)
		}
	}
}

// BeyondExactLiteral agrees with exact rational arithmetic on every number.
func FuzzBeyondExactLiteral(f *testing.F) {
	for _, seed := range []string{
		"0", "-0", "0.0", "1", "9007199254740992", "9007199254740993", "-9007199254740993.0",
		"9.007199254740993e15", "90071992547409930e-1", "0.00009007199254740993e20", "1e400", "1.5e-7",
		"9007199254740992.0000000001", "900719925474099.2e1", "1E+16", "1e-99999999999",
	} {
		f.Add(seed)
	}
	limit := new(big.Rat).SetInt64(MaxExactInteger)
	f.Fuzz(func(t *testing.T, num string) {
		if !jsonNumber.MatchString(num) {
			return
		}
		// big.Rat would expand a huge exponent; beyond ±400 the sign of
		// the exponent alone decides for the bodies that fit 64 KiB.
		_, exp, _ := strings.Cut(strings.ToLower(num), "e")
		if e, err := strconv.Atoi(exp); exp != "" && (err != nil || e > 400 || e < -400) {
			return
		}
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			t.Fatalf("big.Rat cannot read %q", num)
		}
		if got, want := BeyondExactLiteral([]byte(num)), r.Abs(r).Cmp(limit) > 0; got != want {
			t.Fatalf("BeyondExactLiteral(%q) = %v, want %v", num, got, want)
		}
	})
}

// jsonNumber is the grammar of a JSON number (RFC 8259 §6), the input
// BeyondExactLiteral is defined on.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func TestCanonicalUUID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", true},
		{"0190A7C2-7E3B-7C41-9F3E-2B1C4D5E6F70", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", true},
		{"{0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70}", "", false},
		{"urn:uuid:0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", "", false},
		{"0190a7c27e3b7c419f3e2b1c4d5e6f70", "", false},
		{" 0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", "", false},
		{"0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7\x00", "", false},
		{"0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7g", "", false},
		{"0190a7c2+7e3b-7c41-9f3e-2b1c4d5e6f70", "", false},
		{"", "", false},
	} {
		got, ok := CanonicalUUID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalUUID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Bounds rounded to the millisecond stay inclusive: a lower bound up, an
// upper bound down, a whole millisecond unchanged.
func TestMillisecondBounds(t *testing.T) {
	at := time.Date(2026, 11, 28, 13, 2, 5, 123_000_000, time.UTC)
	for _, tc := range []struct {
		in       time.Time
		from, to time.Time
	}{
		{at, at, at},
		{at.Add(100 * time.Microsecond), at.Add(time.Millisecond), at},
		{at.Add(999_999), at.Add(time.Millisecond), at},
		{at.Add(1), at.Add(time.Millisecond), at},
	} {
		if got := FromMillisecond(tc.in); !got.Equal(tc.from) {
			t.Errorf("FromMillisecond(%v) = %v, want %v", tc.in, got, tc.from)
		}
		if got := ToMillisecond(tc.in); !got.Equal(tc.to) {
			t.Errorf("ToMillisecond(%v) = %v, want %v", tc.in, got, tc.to)
		}
	}
}

func TestMaxBodyDepthHoldsClaimsAtTheLimit(t *testing.T) {
	// {"claims":{...}} nests claims of depth d at body depth d+1.
	for _, d := range []int{1, 10, 64} {
		if got := MaxBodyDepth(d); got < d+1 {
			t.Errorf("MaxBodyDepth(%d) = %d: a body with claims at the limit would be refused", d, got)
		}
	}
}
