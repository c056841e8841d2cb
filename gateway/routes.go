package gateway

import (
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// route is one REST binding of an RPC, read from its google.api.http rule,
// so the gateway's own checks can never disagree with the generated mux.
type route struct {
	method   string   // HTTP method
	template string   // path template, as the access log names the route
	segments []string // template split on "/", variables as "{name}"
	rpc      protoreflect.MethodDescriptor
	body     string // "" (no body), "*" or the request field bound to the body
}

// bodyMessage is the descriptor of the JSON body the route accepts, or nil.
func (rt *route) bodyMessage() protoreflect.MessageDescriptor {
	switch rt.body {
	case "":
		return nil
	case "*":
		return rt.rpc.Input()
	default:
		return rt.rpc.Input().Fields().ByName(protoreflect.Name(rt.body)).Message()
	}
}

// pathVar reports whether name is bound to a path segment of the route.
func (rt *route) pathVar(name string) bool {
	for _, s := range rt.segments {
		if s == "{"+name+"}" {
			return true
		}
	}
	return false
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
		rs = append(rs, &route{
			method:   verb,
			template: template,
			segments: strings.Split(strings.TrimPrefix(template, "/"), "/"),
			rpc:      m,
			body:     rule.GetBody(),
		})
	}
	return rs
}

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

// find returns the route serving method and path, with its path variables.
func (rs routes) find(method, path string) (*route, map[string]string) {
	for _, rt := range rs {
		if rt.method != method {
			continue
		}
		if vars, ok := rt.match(path); ok {
			return rt, vars
		}
	}
	return nil, nil
}

// template returns the path template of the routes serving path, or "".
func (rs routes) template(path string) string {
	for _, rt := range rs {
		if _, ok := rt.match(path); ok {
			return rt.template
		}
	}
	return ""
}

// allowed lists the methods served at path, for the Allow header of a 405.
func (rs routes) allowed(path string) []string {
	var methods []string
	for _, rt := range rs {
		if _, ok := rt.match(path); ok {
			methods = append(methods, rt.method)
		}
	}
	return methods
}
