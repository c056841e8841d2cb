package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/usersd/usersd/gateway/jsonbody"
)

// route is one REST binding of an RPC, read from its google.api.http rule,
// so the gateway's own checks can never disagree with the generated mux.
// The mux does the routing; a request's route is looked up from what it
// matched (runtime.HTTPPattern in the guard, runtime.RPCMethod after).
type route struct {
	method     string   // HTTP method
	template   string   // path template, as the access log names the route
	pattern    string   // the template as runtime.Pattern prints it: "/v1/users/{id=*}"
	segments   []string // template split on "/", variables as "{name}"
	vars       []string // names of the path variables, sorted
	rpc        protoreflect.MethodDescriptor
	fullMethod string // as runtime.RPCMethod names it: "/users.v1.UserService/GetUser"
	body       string // "" (no body), "*" or the request field bound to the body
	// bodyType is the message of the JSON body the route accepts, which
	// the guard decodes into, or nil; updateMask is the FieldMask field of
	// a request whose body is one of its fields (PUT /v1/users/{id}), which
	// the guard derives, or nil.
	bodyType   protoreflect.MessageType
	updateMask protoreflect.FieldDescriptor
	maskOrder  []protoreflect.FieldDescriptor // the body message's fields by name
	// shadowed are the paths of routes without variables that this
	// route's template matches too (/v1/users/search for
	// /v1/users/{id}): the mux may hand them to this route for a method
	// only theirs lacks, which is a 405, not a call with id "search".
	shadowed []string
	// buffers lends the requests of a route whose responses carry users
	// the buffer they are rendered into (renderbuf.go); nil for others.
	buffers *renderPool
}

// maskPaths is the update mask of a body: exactly the fields its top-level
// keys name, sorted, so "claims": null clears and an absent key keeps
// (checkQuery never forwards a mask the client put in the query).
func (rt *route) maskPaths(named jsonbody.Result) string {
	var b strings.Builder
	for _, fd := range rt.maskOrder {
		if named.Names(fd) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(string(fd.Name()))
		}
	}
	return b.String()
}

// pathVar reports whether name is bound to a path segment of the route.
func (rt *route) pathVar(name string) bool {
	_, ok := slices.BinarySearch(rt.vars, name)
	return ok
}

// match returns the path variables when path fits the route's template.
func (rt *route) match(path string) (map[string]string, bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) != len(rt.segments) {
		return nil, false
	}
	vars := map[string]string{}
	for i, s := range rt.segments {
		if name, ok := strings.CutPrefix(s, "{"); ok {
			// An empty segment binds too, as in the gateway's own
			// matcher; the service then refuses the empty id.
			vars[strings.TrimSuffix(name, "}")] = parts[i]
			continue
		}
		if parts[i] != s {
			return nil, false
		}
	}
	return vars, true
}

type routes []*route

// routesOf reads the HTTP bindings of every method of a service.
func routesOf(sd protoreflect.ServiceDescriptor) routes {
	var rs routes
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			continue
		}
		verb, template := ruleBinding(rule)
		segments := strings.Split(strings.TrimPrefix(template, "/"), "/")
		printed := make([]string, len(segments))
		var vars []string
		for i, s := range segments {
			if name, ok := strings.CutPrefix(s, "{"); ok && !strings.Contains(name, "=") {
				name = strings.TrimSuffix(name, "}")
				vars = append(vars, name)
				s = "{" + name + "=*}"
			}
			printed[i] = s
		}
		slices.Sort(vars)
		rt := &route{
			method:     verb,
			template:   template,
			pattern:    "/" + strings.Join(printed, "/"),
			segments:   segments,
			vars:       vars,
			rpc:        m,
			fullMethod: "/" + string(sd.FullName()) + "/" + string(m.Name()),
			body:       rule.GetBody(),
		}
		switch users, pages := rendersUsers(m.Output()); {
		case pages:
			rt.buffers = &pageBuffers
		case users:
			rt.buffers = &userBuffers
		}
		var bodyMessage protoreflect.MessageDescriptor
		bodyMessage, rt.updateMask = bodyOf(m.Input(), rt.body)
		if bodyMessage != nil {
			rt.bodyType = goType(bodyMessage)
		}
		if rt.updateMask != nil {
			fields := bodyMessage.Fields()
			for i := 0; i < fields.Len(); i++ {
				rt.maskOrder = append(rt.maskOrder, fields.Get(i))
			}
			slices.SortFunc(rt.maskOrder, func(a, b protoreflect.FieldDescriptor) int {
				return strings.Compare(string(a.Name()), string(b.Name()))
			})
		}
		rs = append(rs, rt)
	}
	for _, rt := range rs {
		for _, literal := range rs {
			if len(rt.vars) > 0 && len(literal.vars) == 0 && !slices.Contains(rt.shadowed, literal.template) {
				if _, ok := rt.match(literal.template); ok {
					rt.shadowed = append(rt.shadowed, literal.template)
				}
			}
		}
	}
	return rs
}

// bodyOf returns the message a request's body holds given its HTTP rule's
// body, and the request's FieldMask field when the body is one field of
// the request.
func bodyOf(req protoreflect.MessageDescriptor, body string) (protoreflect.MessageDescriptor, protoreflect.FieldDescriptor) {
	switch body {
	case "":
		return nil, nil
	case "*":
		return req, nil
	}
	var mask protoreflect.FieldDescriptor
	fields := req.Fields()
	for i := 0; i < fields.Len(); i++ {
		if md := fields.Get(i).Message(); md != nil && md.FullName() == fieldMaskName {
			mask = fields.Get(i)
		}
	}
	return fields.ByName(protoreflect.Name(body)).Message(), mask
}

// goType is the generated Go type of md, which importing the generated
// package registers: its absence is a build mistake, not a runtime state.
func goType(md protoreflect.MessageDescriptor) protoreflect.MessageType {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(fmt.Sprintf("gateway: no Go type for message %s: %v", md.FullName(), err))
	}
	return mt
}

// fieldMaskName names the update mask's type, from its descriptor.
var fieldMaskName = (&fieldmaskpb.FieldMask{}).ProtoReflect().Descriptor().FullName()

func ruleBinding(rule *annotations.HttpRule) (method, template string) {
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "GET", p.Get
	case *annotations.HttpRule_Post:
		return "POST", p.Post
	case *annotations.HttpRule_Put:
		return "PUT", p.Put
	case *annotations.HttpRule_Delete:
		return "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		return "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// matched returns the route of a request the mux matched to pattern, or
// nil. Printing a pattern costs several allocations: the guard keeps what
// it found (see guard).
func (rs routes) matched(method string, pattern runtime.Pattern) *route {
	printed := pattern.String()
	for _, rt := range rs {
		if rt.method == method && rt.pattern == printed {
			return rt
		}
	}
	return nil
}

// byRPC indexes the routes by the full method name of their RPC.
func (rs routes) byRPC() map[string]*route {
	out := make(map[string]*route, len(rs))
	for _, rt := range rs {
		out[rt.fullMethod] = rt
	}
	return out
}

// serving returns the routes serving path: of those whose template
// matches it, the ones with the fewest variables, so a literal path
// (/v1/users/search) is not also taken as a variable (/v1/users/{id}).
func (rs routes) serving(path string) routes {
	var out routes
	for _, rt := range rs {
		if _, ok := rt.match(path); !ok {
			continue
		}
		if len(out) > 0 && len(rt.vars) < len(out[0].vars) {
			out = out[:0]
		}
		if len(out) == 0 || len(rt.vars) == len(out[0].vars) {
			out = append(out, rt)
		}
	}
	return out
}

// template returns the path template of the routes serving path, or "".
func (rs routes) template(path string) string {
	if s := rs.serving(path); len(s) > 0 {
		return s[0].template
	}
	return ""
}

// allowed lists the methods served at path, for the Allow header of a 405.
func (rs routes) allowed(path string) []string {
	var methods []string
	for _, rt := range rs.serving(path) {
		methods = append(methods, rt.method)
	}
	return methods
}
