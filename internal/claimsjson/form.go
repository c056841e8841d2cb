package claimsjson

import (
	"strings"

	"github.com/usersd/usersd/internal/jsontext"
)

// maxDepth bounds the nesting appendAPIForm follows; claims are at most
// 10 deep (rules), so deeper ones are left to the Struct path.
const maxDepth = 32

// appendAPIForm appends the claims stored as JSON in the form the gateway
// writes a Struct of them in: protojson's, compact, members sorted by key.
// It vouches for that only for JSON as the service stores it (sorted
// keys, no whitespace), and only where the two forms spell alike or a
// value is simply respelled:
//
//   - an object's keys must come in strictly increasing byte order: the
//     order protojson writes them in, and no key twice;
//   - a string must hold no escape, no control character and valid UTF-8,
//     so protojson writes it as it is (the service's encoding/json form
//     escapes U+2028 and U+2029, which protojson does not: such strings
//     are left to the Struct path);
//   - a number is written as protojson writes the float64 it parses to,
//     and must be finite;
//   - nothing else: no whitespace, nesting at most maxDepth deep.
//
// Anything else, ok is false and b's content past its length is void.
func appendAPIForm(b []byte, stored string) (_ []byte, ok bool) {
	s := scanner{in: stored, out: b}
	if !s.object(0) || s.i != len(s.in) {
		return b, false
	}
	return append(s.out, s.in[s.copied:]...), true
}

// scanner checks stored JSON and copies it to out as it goes, all but its
// numbers as they are: in[copied:i] is read and not yet copied.
type scanner struct {
	in        string
	i, copied int
	out       []byte
}

func (s *scanner) object(depth int) bool {
	if !s.next('{') || depth == maxDepth {
		return false
	}
	if s.next('}') {
		return true
	}
	for prev, first := "", true; ; first = false {
		key, ok := s.string()
		if !ok || !first && key <= prev || !s.next(':') || !s.value(depth) {
			return false
		}
		prev = key
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func (s *scanner) list(depth int) bool {
	if !s.next('[') || depth == maxDepth {
		return false
	}
	if s.next(']') {
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		if s.next(']') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func (s *scanner) value(depth int) bool {
	if s.i == len(s.in) {
		return false
	}
	switch c := s.in[s.i]; {
	case c == '"':
		_, ok := s.string()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.list(depth + 1)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(s.in[s.i:], lit) {
			s.i += len(lit)
			return true
		}
	}
	return false
}

// next consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	if s.i < len(s.in) && s.in[s.i] == c {
		s.i++
		return true
	}
	return false
}

// string reads a quoted string that protojson writes as it is, and
// returns its content.
func (s *scanner) string() (string, bool) {
	str, n, ok := jsontext.PlainString(s.in[s.i:])
	s.i += n
	return str, ok
}

// number respells a JSON number as protojson writes its float64, which
// must be finite.
func (s *scanner) number() bool {
	f, n, ok := jsontext.Number(s.in[s.i:])
	if !ok {
		return false
	}
	s.out = append(s.out, s.in[s.copied:s.i]...)
	s.out = jsontext.AppendNumber(s.out, f)
	s.i += n
	s.copied = s.i
	return true
}
