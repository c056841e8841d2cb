package gateway

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/jsontext"
)

// renderUsers writes the responses that carry users (a user, a page of
// users) as compactJSON's protojson path would, byte for byte, without
// its reflection, its map sorting through interfaces and the second pass
// that strips its spaces: those were over a third of the CPU of a listing
// page. ok is false for any other message, and for any value protojson
// would refuse (a number that is not finite, a string that is not UTF-8,
// a Value without a kind), which then takes the protojson path, errors
// included.
//
// A user's claims come from claims when it holds them (the service put
// them there as JSON text), else from the user's Claims.
//
// The response is appended to dst[:0] (a lent buffer, see renderbuf.go)
// when dst has room for its likely size, else to a new buffer.
func renderUsers(dst []byte, v any, claims *claimsjson.Texts) (b []byte, ok bool) {
	r := renderer{claims: claims}
	u, isUser := v.(*usersv1.User)
	users, next, isPage := pageOf(v)
	if isUser && u == nil || !isUser && !isPage {
		return nil, false
	}
	// A new buffer when dst cannot hold the response's likely size:
	// growing a small one by doubling would allocate about twice as much.
	r.b = dst[:0]
	if need := 512*max(len(users), 1) + 64; cap(r.b) < need {
		r.b = make([]byte, 0, need)
	}
	if isUser {
		r.user(u)
	} else {
		r.page(users, next)
	}
	return r.b, !r.refused
}

// pageOf returns the users and the cursor of a page renderUsers writes (a
// non-nil ListUsersResponse or SearchUsersResponse); isPage is false for
// anything else.
func pageOf(v any) (data []*usersv1.User, next *string, isPage bool) {
	switch m := v.(type) {
	case *usersv1.ListUsersResponse:
		if m != nil {
			return m.Data, m.NextCursor, true
		}
	case *usersv1.SearchUsersResponse:
		if m != nil {
			return m.Data, m.NextCursor, true
		}
	}
	return nil, nil, false
}

// renderer appends JSON to b until a value is refused; after that its
// output is void.
type renderer struct {
	b       []byte
	refused bool
	claims  *claimsjson.Texts
}

// page writes {"data":[...],"nextCursor":...}: data always (an empty
// list too, as EmitDefaultValues does), nextCursor when set.
func (r *renderer) page(users []*usersv1.User, next *string) {
	r.b = append(r.b, `{"data":[`...)
	for i, u := range users {
		if i > 0 {
			r.b = append(r.b, ',')
		}
		if u == nil {
			r.refused = true
			return
		}
		r.user(u)
	}
	r.b = append(r.b, ']')
	if next != nil {
		r.b = append(r.b, `,"nextCursor":`...)
		r.string(*next)
	}
	r.b = append(r.b, '}')
}

// user writes a user's fields in declaration order: id always, claims
// and authenticationProvider when set (messages have presence).
func (r *renderer) user(u *usersv1.User) {
	r.b = append(r.b, `{"id":`...)
	r.string(u.GetId())
	if text, ok := r.claims.Of(u); ok {
		r.b = append(r.b, `,"claims":`...)
		r.b = append(r.b, text...)
	} else if u.Claims != nil {
		r.b = append(r.b, `,"claims":`...)
		r.object(u.Claims, 0)
	}
	if p := u.AuthenticationProvider; p != nil {
		r.b = append(r.b, `,"authenticationProvider":{"providerId":`...)
		r.string(p.GetProviderId())
		r.b = append(r.b, `,"url":`...)
		r.string(p.GetUrl())
		r.b = append(r.b, `,"subjectId":`...)
		r.string(p.GetSubjectId())
		r.b = append(r.b, '}')
	}
	r.b = append(r.b, '}')
}

// maxRenderDepth bounds the recursion into claims; deeper ones (never
// stored: claims are at most 10 deep) take the protojson path.
const maxRenderDepth = 64

// object writes a Struct's fields sorted by key, as protojson orders the
// entries of a map.
func (r *renderer) object(s *structpb.Struct, depth int) {
	if depth > maxRenderDepth {
		r.refused = true
		return
	}
	fields := s.GetFields()
	var buf [16]string
	keys := jsontext.SortedKeys(buf[:0], fields)
	r.b = append(r.b, '{')
	for i, k := range keys {
		if i > 0 {
			r.b = append(r.b, ',')
		}
		r.string(k)
		r.b = append(r.b, ':')
		r.value(fields[k], depth)
		if r.refused {
			return
		}
	}
	r.b = append(r.b, '}')
}

func (r *renderer) value(v *structpb.Value, depth int) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		if k != nil {
			r.b = append(r.b, "null"...)
			return
		}
	case *structpb.Value_NumberValue:
		if k != nil {
			r.number(k.NumberValue)
			return
		}
	case *structpb.Value_StringValue:
		if k != nil {
			r.string(k.StringValue)
			return
		}
	case *structpb.Value_BoolValue:
		if k != nil {
			r.b = strconv.AppendBool(r.b, k.BoolValue)
			return
		}
	case *structpb.Value_StructValue:
		if k != nil && k.StructValue != nil {
			r.object(k.StructValue, depth+1)
			return
		}
	case *structpb.Value_ListValue:
		if k != nil && k.ListValue != nil {
			r.list(k.ListValue, depth+1)
			return
		}
	}
	r.refused = true // no kind, or a nil one: protojson's to judge
}

func (r *renderer) list(l *structpb.ListValue, depth int) {
	if depth > maxRenderDepth {
		r.refused = true
		return
	}
	r.b = append(r.b, '[')
	for i, e := range l.GetValues() {
		if i > 0 {
			r.b = append(r.b, ',')
		}
		r.value(e, depth)
		if r.refused {
			return
		}
	}
	r.b = append(r.b, ']')
}

func (r *renderer) number(f float64) {
	var ok bool
	r.b, ok = appendNumber(r.b, f)
	r.refused = r.refused || !ok
}

func (r *renderer) string(s string) {
	var ok bool
	r.b, ok = jsontext.AppendProtojsonString(r.b, s)
	r.refused = r.refused || !ok
}

// appendNumber formats f as protojson does; a number that is not finite
// is protojson's error in a Value, so it is not ok here.
func appendNumber(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	return jsontext.AppendNumber(b, f), true
}
