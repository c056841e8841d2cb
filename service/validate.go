package service

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/rules"
)

// Limits are the configurable bounds on user input.
type Limits struct {
	MaxClaimsBytes int // compact JSON size of the claims object
	MaxClaimsDepth int // the claims object itself is depth 1
}

// DefaultLimits are the contract's defaults.
var DefaultLimits = Limits{MaxClaimsBytes: 16 << 10, MaxClaimsDepth: 10}

const (
	maxURLBytes       = 2048
	maxSubjectIDBytes = 256
	defaultPageSize   = 100
	maxPageSize       = 1000
)

// FieldViolation names one offending input by its proto field path (for
// example "user.authentication_provider.url" or "claims.a.b").
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError lists every offending input of a request.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// violations collects field violations, the first rpcerr.MaxViolations of
// them; err returns nil when there are none.
type violations []FieldViolation

func (vs *violations) add(field, format string, args ...any) {
	if vs.full() {
		return
	}
	*vs = append(*vs, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// full reports that further violations would be dropped, so loops over
// many inputs can stop.
func (vs violations) full() bool { return len(vs) >= rpcerr.MaxViolations }

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

// checkID validates a user id field and returns its canonical form.
func checkID(vs *violations, field, id string) string {
	canon, ok := rules.CanonicalUUID(id)
	if !ok {
		vs.add(field, "must be a UUID")
	}
	return canon
}

// isControl reports Unicode category Cc: C0, DEL and C1.
func isControl(r rune) bool { return unicode.Is(unicode.Cc, r) }

func hasControl(s string) bool { return strings.IndexFunc(s, isControl) >= 0 }

// checkProvider validates a provider link and returns it with its provider
// id in canonical form.
func checkProvider(vs *violations, field string, p *usersv1.AuthenticationProvider) *usersv1.AuthenticationProvider {
	out := &usersv1.AuthenticationProvider{Url: p.GetUrl(), SubjectId: p.GetSubjectId()}
	if p.GetProviderId() == "" {
		vs.add(field+".provider_id", "is required")
	} else {
		out.ProviderId = checkID(vs, field+".provider_id", p.GetProviderId())
	}
	checkURL(vs, field+".url", p.GetUrl())
	if p.GetSubjectId() == "" {
		vs.add(field+".subject_id", "is required")
	} else {
		checkSubjectID(vs, field+".subject_id", p.GetSubjectId())
	}
	return out
}

// checkSubjectID checks a non-empty subject id, in a link or in search
// criteria, and reports whether it passed.
func checkSubjectID(vs *violations, field, s string) bool {
	switch {
	case len(s) > maxSubjectIDBytes:
		vs.add(field, "must be at most %d bytes", maxSubjectIDBytes)
	case !utf8.ValidString(s) || hasControl(s):
		vs.add(field, "must not contain control characters")
	default:
		return true
	}
	return false
}

func checkURL(vs *violations, field, raw string) {
	switch {
	case raw == "":
		vs.add(field, "is required")
		return
	case len(raw) > maxURLBytes:
		vs.add(field, "must be at most %d bytes", maxURLBytes)
		return
	case hasControl(raw) || strings.ContainsAny(raw, " \t"):
		vs.add(field, "must be an absolute http or https URL")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		vs.add(field, "must be an absolute http or https URL")
	}
}

// checkClaims enforces the claims limits on a decoded Struct: depth,
// non-empty keys, representable numbers, no U+0000, and the size of the
// compact JSON the store would keep (returned, so it is encoded once).
//
// U+0000 is refused in keys and strings because PostgreSQL's jsonb cannot
// store it: every backend refuses the same claims.
func checkClaims(vs *violations, field string, claims *structpb.Struct, lim Limits) []byte {
	before := len(*vs)
	checkStruct(vs, field, claims, 1, lim.MaxClaimsDepth)
	if len(*vs) > before {
		return nil
	}
	encoded := encodeClaims(claims)
	if len(encoded) > lim.MaxClaimsBytes {
		vs.add(field, "must be at most %d bytes as compact JSON", lim.MaxClaimsBytes)
		return nil
	}
	return encoded
}

func checkStruct(vs *violations, path string, s *structpb.Struct, depth, maxDepth int) {
	if depth > maxDepth {
		vs.add(path, "nesting must be at most %d levels deep", maxDepth)
		return
	}
	fields := s.GetFields()
	// Sorted, so the violations of one input always come in one order.
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if vs.full() {
			return
		}
		// A bad key is reported at the object that holds it.
		if k == "" {
			vs.add(path, "keys must not be empty")
			continue
		}
		if strings.IndexByte(k, 0) >= 0 {
			vs.add(path, "keys must not contain U+0000")
			continue
		}
		checkValue(vs, path+"."+k, fields[k], depth, maxDepth)
	}
}

func checkValue(vs *violations, path string, v *structpb.Value, depth, maxDepth int) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		n := k.NumberValue
		switch {
		case math.IsNaN(n) || math.IsInf(n, 0):
			vs.add(path, "must be a finite number")
		case rules.BeyondExactFloat(n):
			vs.add(path, rules.InexactNumber)
		}
	case *structpb.Value_StringValue:
		if strings.IndexByte(k.StringValue, 0) >= 0 {
			vs.add(path, "must not contain U+0000")
		}
	case *structpb.Value_StructValue:
		checkStruct(vs, path, k.StructValue, depth+1, maxDepth)
	case *structpb.Value_ListValue:
		if depth+1 > maxDepth {
			vs.add(path, "nesting must be at most %d levels deep", maxDepth)
			return
		}
		for i, e := range k.ListValue.GetValues() {
			if vs.full() {
				return
			}
			checkValue(vs, fmt.Sprintf("%s[%d]", path, i), e, depth+1, maxDepth)
		}
	case nil:
		vs.add(path, "must be a JSON value")
	}
}

// pageSize validates an optional page size.
func pageSize(vs *violations, limit *int32) int {
	if limit == nil {
		return defaultPageSize
	}
	if *limit < 1 || *limit > maxPageSize {
		vs.add("limit", "must be between 1 and %d", maxPageSize)
	}
	return int(*limit)
}
