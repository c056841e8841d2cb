// Package rules decides the input rules that more than one layer applies,
// each in one place: the REST gateway judges a body's text before it is
// decoded, the service judges decoded values from both transports, and
// the two must never drift apart.
package rules

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxExactInteger is 2^53: every integer up to it in magnitude is exactly
// a float64 (a JSON number, a google.protobuf.Value); beyond it only some
// are, and the others would silently change. Numbers beyond ±2^53 are
// refused, however they are written.
const MaxExactInteger = 1 << 53

// InexactNumber is what a client is told of a number beyond ±2^53.
const InexactNumber = "numbers beyond ±2^53 cannot be represented exactly"

// BeyondExactFloat applies the ±2^53 rule to a decoded number (false for
// NaN, which is judged on its own).
func BeyondExactFloat(f float64) bool { return math.Abs(f) > MaxExactInteger }

// maxExactDigits are the decimal digits of MaxExactInteger.
var maxExactDigits = strconv.FormatInt(MaxExactInteger, 10)

// BeyondExactLiteral applies the ±2^53 rule to the text of a JSON number,
// which must be well-formed. It compares digits and never rounds, since no
// float64 tells 2^53+1 from 2^53: num is 0.D × 10^point, D its significant
// digits (no leading or trailing zeros), and 2^53 is 0.9007199254740992 ×
// 10^16. Literals that overflow a float64 (1e400) are beyond it too.
func BeyondExactLiteral(num []byte) bool {
	num = bytes.TrimPrefix(num, []byte("-"))
	mant, exp := num, []byte(nil)
	if i := bytes.IndexAny(num, "eE"); i >= 0 {
		mant, exp = num[:i], num[i+1:]
	}
	intp, frac, _ := bytes.Cut(mant, []byte("."))
	if string(intp) == "0" { // JSON allows no other leading zero
		intp = nil
	}
	point := len(intp)
	if len(intp) == 0 {
		n := len(frac)
		frac = bytes.TrimLeft(frac, "0")
		point -= n - len(frac)
	}
	if frac = bytes.TrimRight(frac, "0"); len(frac) == 0 {
		intp = bytes.TrimRight(intp, "0")
	}
	n := len(intp) + len(frac)
	if n == 0 {
		return false // zero, in any spelling
	}
	if point += exponent(exp); point != len(maxExactDigits) {
		return point > len(maxExactDigits)
	}
	for i := 0; i < len(maxExactDigits); i++ {
		if i == n {
			return false // D is a prefix of 2^53's digits: smaller
		}
		var d byte
		if i < len(intp) {
			d = intp[i]
		} else {
			d = frac[i-len(intp)]
		}
		if d != maxExactDigits[i] {
			return d > maxExactDigits[i]
		}
	}
	return n > len(maxExactDigits)
}

// exponent parses the exponent digits of a JSON number, saturating far
// beyond any shift that could matter for a body of bounded size.
func exponent(exp []byte) int {
	neg := false
	if len(exp) > 0 && (exp[0] == '+' || exp[0] == '-') {
		neg = exp[0] == '-'
		exp = exp[1:]
	}
	e := 0
	for _, c := range exp {
		if e < 1<<30/10 {
			e = e*10 + int(c-'0')
		}
	}
	if neg {
		return -e
	}
	return e
}

// MaxBodyDepth is the nesting a REST body may reach before the gateway
// refuses it undecoded, for claims at most maxClaimsDepth deep (the claims
// object is depth 1, each object or array inside it one more; the service
// enforces that). A user body nests its claims one level deeper; two more
// levels leave claims a little too deep to the service, whose message
// names the claims limit, and stop only bodies far deeper than any valid
// one before they cost a decoding.
func MaxBodyDepth(maxClaimsDepth int) int { return maxClaimsDepth + 3 }

// CanonicalUUID returns s in lower case when it is canonical UUID text
// (8-4-4-4-12 hex digits, either case); ok is false otherwise.
func CanonicalUUID(s string) (canon string, ok bool) {
	if len(s) != 36 {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		return strings.ToLower(s), true
	}
	return s, true // already canonical: no copy
}

// FromMillisecond rounds a lower bound up to the millisecond, the
// precision times are kept to, so that it stays inclusive: a time kept to
// the millisecond is at or after t exactly when it is at or after
// FromMillisecond(t).
func FromMillisecond(t time.Time) time.Time {
	if f := t.Truncate(time.Millisecond); !f.Equal(t) {
		return f.Add(time.Millisecond)
	}
	return t
}

// ToMillisecond rounds an upper bound down to the millisecond, so that it
// stays inclusive (and a time to keep, to the precision it is kept to).
func ToMillisecond(t time.Time) time.Time { return t.Truncate(time.Millisecond) }
