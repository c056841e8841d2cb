// Package etag is the entity tag of a user version and the conditional
// request fields that name it (RFC 9110 §8.8.3, §13.1.1, §13.1.2), decided
// once for the service (If-Match) and the REST gateway (If-None-Match).
package etag

import (
	"strconv"
	"strings"
)

// Metadata keys: the service sends a user's entity tag as etag header
// metadata and reads if-match from the request's; the REST gateway maps
// them to and from the ETag and If-Match headers.
const (
	Metadata        = "etag"
	IfMatchMetadata = "if-match"
)

// Of is the strong entity tag of a user version: the decimal number,
// quoted ("3").
func Of(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// NoVersion is what IfMatch returns for a condition no version meets: a
// weak tag (If-Match compares strongly) or a tag this server never issues.
// No user has it, so a store answers a write that expects it with a
// version mismatch, or not found.
const NoVersion int64 = -1

// IfMatch reads an If-Match field (all its values, as one list): the
// version the user must have. 0 means no condition, or "*" (any version,
// and so any user that exists). ok is false unless the field is absent,
// "*", or exactly one entity tag: a list of several is refused rather
// than half honoured.
func IfMatch(values []string) (version int64, ok bool) {
	if len(values) == 0 {
		return 0, true
	}
	if len(values) == 1 && strings.Trim(values[0], " \t") == "*" {
		return 0, true
	}
	tags, ok := parse(values)
	if !ok || len(tags) != 1 {
		return 0, false
	}
	t := tags[0]
	if t.weak {
		return NoVersion, true
	}
	// Only the form Of prints: a strong comparison is exact, so "03" or
	// "+3" is another tag than "3".
	digits := t.opaque[1 : len(t.opaque)-1]
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != digits {
		return NoVersion, true
	}
	return n, true
}

// NoneMatch reports whether an If-None-Match field (all its values, as one
// list) matches current, an entity tag as Of prints it: "*", or a listed
// tag that is current by weak comparison (W/"3" matches "3"). A field that
// does not parse matches nothing.
func NoneMatch(values []string, current string) bool {
	if len(values) == 1 && strings.Trim(values[0], " \t") == "*" {
		return true
	}
	tags, ok := parse(values)
	if !ok {
		return false
	}
	for _, t := range tags {
		if t.opaque == current {
			return true
		}
	}
	return false
}

// tag is one entity tag of a list; opaque keeps its quotes.
type tag struct {
	weak   bool
	opaque string
}

// parse reads a list of entity tags (#entity-tag): elements separated by
// commas and optional whitespace, empty ones skipped. ok is false when an
// element is not an entity tag.
func parse(values []string) ([]tag, bool) {
	var tags []tag
	for _, v := range values {
		for {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			var t tag
			if rest, ok := strings.CutPrefix(v, "W/"); ok {
				t.weak, v = true, rest
			}
			end := opaqueEnd(v)
			if end < 0 {
				return nil, false
			}
			t.opaque, v = v[:end], strings.TrimLeft(v[end:], " \t")
			if v != "" && v[0] != ',' {
				return nil, false
			}
			tags = append(tags, t)
		}
	}
	return tags, true
}

// opaqueEnd returns the length of the opaque-tag s starts with (a quoted
// string of etagc: visible ASCII but '"', or obs-text), or -1.
func opaqueEnd(s string) int {
	if s == "" || s[0] != '"' {
		return -1
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c < 0x21 || c == 0x7f:
			return -1
		}
	}
	return -1
}
