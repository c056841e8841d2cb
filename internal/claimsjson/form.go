package claimsjson

import (
	"strconv"

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
	return s.out, true
}

type scanner struct {
	in  string
	i   int
	out []byte
}

func (s *scanner) object(depth int) bool {
	if !s.next('{') || depth == maxDepth {
		return false
	}
	s.out = append(s.out, '{')
	if s.next('}') {
		s.out = append(s.out, '}')
		return true
	}
	prev, first := "", true
	for {
		key, ok := s.string()
		if !ok || !first && key <= prev || !s.next(':') {
			return false
		}
		prev, first = key, false
		s.out = append(s.out, ':')
		if !s.value(depth) {
			return false
		}
		if s.next('}') {
			s.out = append(s.out, '}')
			return true
		}
		if !s.next(',') {
			return false
		}
		s.out = append(s.out, ',')
	}
}

func (s *scanner) list(depth int) bool {
	if !s.next('[') || depth == maxDepth {
		return false
	}
	s.out = append(s.out, '[')
	if s.next(']') {
		s.out = append(s.out, ']')
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		if s.next(']') {
			s.out = append(s.out, ']')
			return true
		}
		if !s.next(',') {
			return false
		}
		s.out = append(s.out, ',')
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
		if len(s.in)-s.i >= len(lit) && s.in[s.i:s.i+len(lit)] == lit {
			s.i += len(lit)
			s.out = append(s.out, lit...)
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

// string copies a quoted string that protojson writes as it is, and
// returns its content.
func (s *scanner) string() (string, bool) {
	if !s.next('"') {
		return "", false
	}
	n, ok := jsontext.PlainStringLen(s.in[s.i:])
	if !ok {
		return "", false
	}
	str := s.in[s.i : s.i+n]
	s.out = append(s.out, s.in[s.i-1:s.i+n+1]...)
	s.i += n + 1
	return str, true
}

// number respells a JSON number as protojson writes its float64, which
// must be finite.
func (s *scanner) number() bool {
	n := jsontext.NumberLen(s.in[s.i:])
	if n == 0 {
		return false
	}
	f, err := strconv.ParseFloat(s.in[s.i:s.i+n], 64)
	if err != nil {
		return false // out of range: not finite
	}
	s.i += n
	s.out = jsontext.AppendNumber(s.out, f)
	return true
}
