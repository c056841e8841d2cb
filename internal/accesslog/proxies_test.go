package accesslog

import (
	"testing"
)

func TestTrustedProxiesFlag(t *testing.T) {
	var tp TrustedProxies
	if err := tp.Set(" 10.1.2.3/8, 192.0.2.1 ,2001:db8::/32,,::1"); err != nil {
		t.Fatal(err)
	}
	if got, want := tp.String(), "10.0.0.0/8,192.0.2.1/32,2001:db8::/32,::1/128"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "10.0.0.1:80", "example.com"} {
		if err := tp.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if err := tp.Set(""); err != nil || len(tp) != 0 {
		t.Fatalf("Set(\"\") = %v, %v: want no proxies", tp, err)
	}
}

func TestClientAddress(t *testing.T) {
	var tp TrustedProxies
	if err := tp.Set("10.0.0.0/8,::1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		proxies   TrustedProxies
		peer      string
		forwarded []string
		want      string
	}{
		{"no proxies configured", nil, "10.0.0.5:1000", []string{"203.0.113.9"}, "10.0.0.5"},
		{"no header", tp, "10.0.0.5:1000", nil, "10.0.0.5"},
		{"peer not a trusted proxy", tp, "198.51.100.1:1000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"one trusted hop", tp, "10.0.0.5:1000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client-supplied entries left of the first untrusted hop are ignored", tp, "10.0.0.5:1000",
			[]string{"1.1.1.1, 203.0.113.9, 10.0.0.7"}, "203.0.113.9"},
		{"several headers read as one list", tp, "10.0.0.5:1000",
			[]string{"1.1.1.1, 203.0.113.9", "10.0.0.7"}, "203.0.113.9"},
		{"garbage hop stops the walk", tp, "10.0.0.5:1000", []string{"203.0.113.9, evil, 10.0.0.7"}, "10.0.0.7"},
		{"garbage right away", tp, "10.0.0.5:1000", []string{"<script>"}, "10.0.0.5"},
		{"all hops trusted: the farthest", tp, "10.0.0.5:1000", []string{"10.9.9.9,10.0.0.7"}, "10.9.9.9"},
		{"hop with a port", tp, "10.0.0.5:1000", []string{"203.0.113.9:5555"}, "203.0.113.9"},
		{"IPv6 peer and hop", tp, "[::1]:1000", []string{"[2001:db8::7]:80"}, "2001:db8::7"},
		{"IPv4-mapped hop", tp, "10.0.0.5:1000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"peer without a port", tp, "gateway", []string{"203.0.113.9"}, "gateway"},
	} {
		if got := tc.proxies.client(tc.peer, tc.forwarded); got != tc.want {
			t.Errorf("%s: client = %q, want %q", tc.name, got, tc.want)
		}
	}
}
