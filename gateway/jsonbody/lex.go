package jsonbody

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// tokenKind is the kind of a JSON token.
type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokObjectOpen
	tokObjectClose
	tokArrayOpen
	tokArrayClose
	tokColon
	tokComma
	tokString
	tokNumber
	tokTrue
	tokFalse
	tokNull
)

// token is one lexical element of the body; buf[start:end] is its raw text.
type token struct {
	kind       tokenKind
	start, end int
	escaped    bool // a string token containing backslash escapes
}

// syntaxError describes malformed JSON. It ends the check: nothing after it
// can be read reliably.
type syntaxError struct {
	msg   string
	value string
}

// lexer splits the body into tokens. It holds no per-level state, so the
// nesting depth of the input cannot exhaust the goroutine stack.
type lexer struct {
	buf []byte
	pos int
}

func (lx *lexer) skipSpace() {
	for lx.pos < len(lx.buf) {
		switch lx.buf[lx.pos] {
		case ' ', '\t', '\n', '\r':
			lx.pos++
		default:
			return
		}
	}
}

// next returns the next token, or the reason the input at the current
// position is not JSON.
func (lx *lexer) next() (token, *syntaxError) {
	lx.skipSpace()
	start := lx.pos
	if start == len(lx.buf) {
		return token{kind: tokEOF, start: start, end: start}, nil
	}
	switch c := lx.buf[start]; c {
	case '{':
		return lx.single(tokObjectOpen), nil
	case '}':
		return lx.single(tokObjectClose), nil
	case '[':
		return lx.single(tokArrayOpen), nil
	case ']':
		return lx.single(tokArrayClose), nil
	case ':':
		return lx.single(tokColon), nil
	case ',':
		return lx.single(tokComma), nil
	case '"':
		return lx.str()
	case '/':
		return token{}, &syntaxError{msg: "invalid JSON: comments are not allowed", value: "/"}
	case '\'':
		return token{}, &syntaxError{msg: "invalid JSON: strings must be enclosed in double quotes", value: "'"}
	}
	if lx.skipWord(); lx.pos > start {
		return lx.literal(start)
	}
	r, size := utf8.DecodeRune(lx.buf[start:])
	if r == utf8.RuneError && size == 1 {
		return token{}, &syntaxError{msg: "invalid JSON: invalid UTF-8"}
	}
	return token{}, &syntaxError{
		msg:   "invalid JSON: unexpected character " + strconv.QuoteRune(r),
		value: string(r),
	}
}

func (lx *lexer) single(kind tokenKind) token {
	lx.pos++
	return token{kind: kind, start: lx.pos - 1, end: lx.pos}
}

// isWordByte reports whether c can continue a number or a literal. The set is
// the one protojson uses, so "1x" or "truex" is one bad word here as there.
func isWordByte(c byte) bool {
	return c == '-' || c == '+' || c == '.' || c == '_' ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipWord consumes the run of word bytes at the current position.
func (lx *lexer) skipWord() {
	for lx.pos < len(lx.buf) && isWordByte(lx.buf[lx.pos]) {
		lx.pos++
	}
}

// literal classifies the word buf[start:pos] as true, false, null or a
// number.
func (lx *lexer) literal(start int) (token, *syntaxError) {
	word := lx.buf[start:lx.pos]
	tok := token{start: start, end: lx.pos}
	switch {
	case string(word) == "true":
		tok.kind = tokTrue
	case string(word) == "false":
		tok.kind = tokFalse
	case string(word) == "null":
		tok.kind = tokNull
	case isNumber(word):
		tok.kind = tokNumber
	case word[0] == '-' || '0' <= word[0] && word[0] <= '9':
		return token{}, &syntaxError{msg: fmt.Sprintf("invalid JSON: invalid number %q", word), value: string(word)}
	default:
		// NaN, Infinity, True, undefined, unquoted strings, ...
		return token{}, &syntaxError{msg: fmt.Sprintf("invalid JSON: invalid value %q", word), value: string(word)}
	}
	return tok, nil
}

// isNumber reports whether s is exactly one JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber[T string | []byte](s T) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func skipDigits[T string | []byte](s T, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// str consumes a string token, validating escapes and UTF-8 as protojson
// does (it refuses unpaired surrogate escapes such as "\ud800").
func (lx *lexer) str() (token, *syntaxError) {
	start := lx.pos
	escaped := false
	for i := start + 1; i < len(lx.buf); {
		c := lx.buf[i]
		switch {
		case c == '"':
			lx.pos = i + 1
			return token{kind: tokString, start: start, end: lx.pos, escaped: escaped}, nil
		case c == '\\':
			n, err := escapeLen(lx.buf[i:])
			if err != nil {
				return token{}, err
			}
			escaped = true
			i += n
		case c < 0x20:
			return token{}, &syntaxError{msg: "invalid JSON: control characters in strings must be escaped"}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(lx.buf[i:])
			if r == utf8.RuneError && size == 1 {
				return token{}, &syntaxError{msg: "invalid JSON: invalid UTF-8"}
			}
			i += size
		}
	}
	return token{}, &syntaxError{msg: "invalid JSON: unterminated string"}
}

// escapeLen returns the length of the escape sequence at the start of b,
// which begins with a backslash. A surrogate pair counts as one sequence.
func escapeLen(b []byte) (int, *syntaxError) {
	if len(b) < 2 {
		return 0, &syntaxError{msg: "invalid JSON: unterminated string"}
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		r, ok := hex4(b, 2)
		if !ok {
			break
		}
		if !utf16.IsSurrogate(r) {
			return 6, nil
		}
		if low, ok := hex4(b, 8); ok && b[6] == '\\' && b[7] == 'u' &&
			utf16.DecodeRune(r, low) != utf8.RuneError {
			return 12, nil
		}
		return 0, &syntaxError{msg: "invalid JSON: unpaired surrogate in \\u escape", value: string(b[:6])}
	}
	return 0, &syntaxError{msg: "invalid JSON: invalid escape sequence", value: string(b[:2])}
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// text returns a token's value as a client wrote it: strings unquoted and
// unescaped, everything else verbatim.
func (lx *lexer) text(tok token) string {
	if tok.kind != tokString {
		return string(lx.buf[tok.start:tok.end])
	}
	raw := lx.buf[tok.start+1 : tok.end-1]
	if !tok.escaped {
		return string(raw)
	}
	return unescape(raw)
}

// unescape decodes the body of a string token already validated by str.
func unescape(raw []byte) string {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if utf16.IsSurrogate(r) {
				low, _ := hex4(raw, i+8)
				r = utf16.DecodeRune(r, low)
				i += 6
			}
			b.WriteRune(r)
			i += 6
			continue
		default: // '"', '\\', '/'
			b.WriteByte(raw[i+1])
		}
		i += 2
	}
	return b.String()
}
