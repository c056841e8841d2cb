package gateway

import (
	"strings"
	"testing"
)

func TestCheckQuery(t *testing.T) {
	list, _ := testRoutes.find("GET", "/v1/users")
	events, _ := testRoutes.find("GET", "/v1/events")
	put, _ := testRoutes.find("PUT", "/v1/users/x")
	for _, tc := range []struct {
		name    string
		rt      *route
		query   string
		forward string   // the query the gateway's parser gets
		details []string // param@location=value
	}{
		{"case=known parameters, by either name", list, "limit=5&cursor=abc", "cursor=abc&limit=5", nil},
		{"case=unknown parameters are dropped", list, "limit=5&x=1&limit[x]=2&cursor.x=3&user.id=4", "limit=5", nil},
		{"case=unknown parameters with bad encoding are dropped", list, "x=%ff&y=%zz&%zz=1&%ff=2", "", nil},
		{"case=semicolon is data", list, "cursor=a;b", "cursor=a%3Bb", nil},
		{"case=invalid UTF-8 in cursor", list, "cursor=%ff", "", []string{"cursor@query=%ff"}},
		{"case=overlong encoding in cursor", list, "cursor=%C0%AF", "", []string{"cursor@query=%C0%AF"}},
		{"case=bad escape in limit", list, "limit=%zz", "", []string{"limit@query=%zz"}},
		{"case=invalid UTF-8 by proto name", events, "request_ids=%ff", "", []string{"requestIds@query=%ff"}},
		{"case=every events filter", events, "ids=%ff&requestIds=%ff&types=%ff&categories=%ff&dateFrom=%ff&dateTo=%ff&limit=%ff&cursor=%ff", "",
			[]string{"ids@query=%ff", "requestIds@query=%ff", "types@query=%ff", "categories@query=%ff", "dateFrom@query=%ff", "dateTo@query=%ff", "limit@query=%ff", "cursor@query=%ff"}},
		{"case=one field by both names", events, "requestIds=a&request_ids=b", "", []string{"requestIds@query=a"}},
		{"case=twice", list, "limit=1&limit=2", "", []string{"limit@query=1"}},
		{"case=not a number", list, "limit=abc", "", []string{"limit@query=abc"}},
		{"case=update mask is the guard's", put, "updateMask=%ff&update_mask=x", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			query, details := checkQuery(tc.rt, tc.query)
			var got []string
			for _, d := range details {
				if d.Msg == "" {
					t.Errorf("detail without msg: %+v", d)
				}
				got = append(got, d.Param+"@"+d.Location+"="+d.Value)
			}
			if strings.Join(got, " ") != strings.Join(tc.details, " ") {
				t.Errorf("details %q, want %q", got, tc.details)
			}
			if tc.details == nil && query.Encode() != tc.forward {
				t.Errorf("forwarded %q, want %q", query.Encode(), tc.forward)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	get, _ := testRoutes.find("GET", "/v1/users/x")
	if d := checkPath(get, map[string]string{"id": "not-a-uuid"}); d != nil {
		t.Fatalf("a well-formed string was refused: %+v", d)
	}
	for _, id := range []string{"\xff", "\xc0\xaf", "a\xed\xa0\x80"} {
		d := checkPath(get, map[string]string{"id": id})
		if len(d) != 1 || d[0].Param != "id" || d[0].Location != locParams || d[0].Msg == "" {
			t.Fatalf("checkPath(%q) = %+v", id, d)
		}
	}
	if got := encodable(map[string]string{"id": "\xff", "other": "ok"}); got["id"] != "" || got["other"] != "ok" || len(got) != 2 {
		t.Fatalf("encodable = %q", got)
	}
}

func TestDropGatewayHeaders(t *testing.T) {
	h := map[string][]string{
		"Grpc-Timeout": {"1n"}, "grpc-timeout": {"1n"}, "Grpc-Metadata-Authorization": {"Bearer x"},
		"grpc-metadata-x-request-id": {"a"}, "GRPC-METADATA-": {"b"},
		"Authorization": {"Bearer t"}, "X-Request-Id": {"r"}, "Grpc-Other": {"kept"},
	}
	dropGatewayHeaders(h)
	if len(h) != 3 || h["Authorization"] == nil || h["X-Request-Id"] == nil || h["Grpc-Other"] == nil {
		t.Fatalf("left %v", h)
	}
}
