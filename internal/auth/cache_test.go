package auth

import (
	"strings"
	"testing"
	"time"
)

func TestTokenCacheHonoursExpiry(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	p := Principal{Subject: "s", Roles: []string{RoleAdmin}}
	c.put("tok", p, now.Add(time.Minute), now)
	if got, ok := c.get("tok", now.Add(59*time.Second)); !ok || got.Subject != "s" {
		t.Fatal("a live token was not remembered")
	}
	if _, ok := c.get("tok", now.Add(time.Minute)); ok {
		t.Fatal("a token was served past its expiry")
	}
	if _, ok := c.get("tok", now); ok {
		t.Fatal("an expired entry was not dropped")
	}
}

func TestTokenCacheTTLBoundsLongTokens(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	c.put("tok", Principal{}, now.Add(24*time.Hour), now)
	if _, ok := c.get("tok", now.Add(tokenCacheTTL)); ok {
		t.Fatal("a verdict outlived the cache TTL")
	}
	if _, ok := c.get("other", now); ok {
		t.Fatal("an unknown token was found")
	}
}

func TestNilTokenCacheRemembersNothing(t *testing.T) {
	var c *tokenCache
	c.put("tok", Principal{}, time.Now().Add(time.Hour), time.Now())
	if _, ok := c.get("tok", time.Now()); ok {
		t.Fatal("nil cache returned an entry")
	}
}

// A cached verdict must not let an expired token through: after expiry
// the token is verified again, and refused.
func TestVerifyRechecksExpiredCachedToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewHMAC(secret, Options{})
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now().Add(-Leeway - 2*time.Second)
	tok, err := IssueHS256(secret, TokenSpec{Subject: "s", Roles: []string{RoleAdmin}, TTL: time.Second}, issued)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend it was cached while it was still valid.
	v.cache.put(tok, Principal{Subject: "s"}, issued.Add(time.Second+Leeway), issued)
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("expired token accepted from the cache")
	}
}

// Tokens are remembered by their hash whatever their length, and looking
// one up allocates nothing (it runs on every call).
func TestTokenCacheKeysAnyLength(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	short, long := "tok", strings.Repeat("t", 5000)
	c.put(short, Principal{Subject: "short"}, now.Add(time.Minute), now)
	c.put(long, Principal{Subject: "long"}, now.Add(time.Minute), now)
	for tok, want := range map[string]string{short: "short", long: "long", long[:4999]: ""} {
		if got, _ := c.get(tok, now); got.Subject != want {
			t.Errorf("token of %d bytes: subject %q, want %q", len(tok), got.Subject, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.get(short, now) }); n != 0 {
		t.Errorf("a lookup made %v allocations", n)
	}
}
