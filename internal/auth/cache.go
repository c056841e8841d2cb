package auth

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

const (
	// tokenCacheSize bounds the verified tokens kept in memory.
	tokenCacheSize = 10_000
	// tokenCacheTTL bounds how long a verdict is reused even when the token
	// lives longer, so a key withdrawn from the JWKS stops working soon.
	tokenCacheTTL = 5 * time.Minute
)

// tokenCache remembers tokens that verified, keyed by their SHA-256 (the
// token itself is a credential and is not kept).
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, cachedToken]
}

type cachedToken struct {
	principal Principal
	until     time.Time
}

func newTokenCache() *tokenCache {
	c, err := lru.New[[sha256.Size]byte, cachedToken](tokenCacheSize)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &tokenCache{lru: c}
}

// get returns the principal of a remembered token; a nil cache remembers
// nothing.
func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	if c == nil {
		return Principal{}, false
	}
	key := tokenKey(token)
	e, ok := c.lru.Get(key)
	if !ok {
		return Principal{}, false
	}
	if !now.Before(e.until) {
		c.lru.Remove(key)
		return Principal{}, false
	}
	return e.principal, true
}

// put remembers a verified token until its expiry (with leeway) or the
// cache TTL, whichever comes first.
func (c *tokenCache) put(token string, p Principal, expires, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(tokenCacheTTL)
	if expires.Before(until) {
		until = expires
	}
	c.lru.Add(tokenKey(token), cachedToken{principal: p, until: until})
}

// tokenKey hashes a token from a copy on the stack: converting it to a
// []byte was the one allocation of a cached verification. Longer tokens
// (rare) are converted.
func tokenKey(token string) [sha256.Size]byte {
	var buf [2048]byte
	if len(token) > len(buf) {
		return sha256.Sum256([]byte(token))
	}
	return sha256.Sum256(buf[:copy(buf[:], token)])
}
