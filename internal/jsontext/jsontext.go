// Package jsontext spells JSON numbers and strings as encoding/json (the
// service's stored claims) and protojson (the gateway's responses) do, for
// the two encoders written for speed, so they cannot drift apart where
// the two spell alike.
package jsontext

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendNumber appends the finite f as encoding/json and protojson write
// it (ES6 number to string): plain decimals, except exponent form below
// 1e-6 and from 1e21 on, with a short exponent (1e-7, not 1e-07). The
// caller decides what a NaN or an infinity becomes.
func AppendNumber(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-09 → e-9
		b = b[:n-1]
	}
	return b
}

// AppendString quotes s as encoding/json does without HTML escaping:
// quotes, backslashes and control characters below U+0020 escaped (\b \f
// \n \r \t, else \u00xx), U+2028 and U+2029 escaped, invalid UTF-8 as
// U+FFFD.
func AppendString(b []byte, s string) []byte {
	b, _ = appendString(b, s, false)
	return b
}

// AppendProtojsonString quotes s as protojson does: the same escapes
// below U+0020, everything else as it is, U+2028 included; invalid UTF-8
// is protojson's error, so ok is false.
func AppendProtojsonString(b []byte, s string) (_ []byte, ok bool) {
	return appendString(b, s, true)
}

func appendString(b []byte, s string, protojson bool) ([]byte, bool) {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := PlainASCII(s); i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			if protojson {
				return b, false
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case (r == '\u2028' || r == '\u2029') && !protojson:
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}

// PlainASCII returns the length of a prefix of s, a multiple of 8 bytes,
// that is all ASCII a JSON string holds as it is (nothing below U+0020,
// no quote, no backslash), testing 8 bytes at once: for quoting a string
// and for finding the end of a quoted one, whose bytes seldom need more
// than this. Byte by byte, quoting was 8% of a list page's instructions.
// The rest of s, from the first word with anything else (or the last few
// bytes), is the caller's to go through byte by byte. A byte below n
// shows as a high bit in (x - n×0x01…01) &^ x, for n up to 0x80 (n = 1:
// a zero byte, which an XOR leaves where the byte looked for was).
func PlainASCII(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		quote, backslash := x^('"'*ones), x^('\\'*ones)
		if (x|(x-0x20*ones)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0 {
			break
		}
	}
	return i
}

// SortedKeys appends m's keys to buf in byte order, the order both
// encoders write an object's members in, and returns it. Give it a slice
// of a stack array, so that small objects cost no allocation.
func SortedKeys[V any](buf []string, m map[string]V) []string {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// Number reads the JSON number s starts with
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?): its value, which must
// be a finite float64, and its length. ok is false for anything else.
func Number(s string) (f float64, n int, ok bool) {
	digits := func() int {
		start := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n - start
	}
	if n < len(s) && s[n] == '-' {
		n++
	}
	switch {
	case n < len(s) && s[n] == '0':
		n++
	case digits() == 0:
		return 0, 0, false
	}
	if n < len(s) && s[n] == '.' {
		n++
		if digits() == 0 {
			return 0, 0, false
		}
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		n++
		if n < len(s) && (s[n] == '+' || s[n] == '-') {
			n++
		}
		if digits() == 0 {
			return 0, 0, false
		}
	}
	f, err := strconv.ParseFloat(s[:n], 64)
	if err != nil { // out of range: not finite
		return 0, 0, false
	}
	return f, n, true
}

// PlainString reads the quoted JSON string s starts with, when its
// content is written as it is: no escape, no control character, valid
// UTF-8 (both encoders write such a string so). It returns the content
// and the length read, quotes included; ok is false for anything else.
func PlainString(s string) (str string, n int, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", 0, false
	}
	ascii := true
	for i := 1 + PlainASCII(s[1:]); i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			str = s[1:i]
			if !ascii && !utf8.ValidString(str) {
				return "", 0, false
			}
			return str, i + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}
