package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Cursors are opaque to clients but carry a keyset position. They are
// signed with a per-database key, so a cursor the server did not issue (or
// one issued for another listing) is refused instead of silently paging
// somewhere.
//
// Layout before base64url: version (1) | kind (1) | position |
// HMAC-SHA256 of the preceding bytes, truncated to 16 bytes.

type cursorKind byte

// The listings that issue cursors; a cursor only works for its own.
const (
	cursorListUsers  cursorKind = 1
	cursorListEvents cursorKind = 2
	// cursorSearchUsers positions carry the digest of the criteria too.
	cursorSearchUsers cursorKind = 3
)

const cursorVersion byte = 1

const (
	cursorHeaderLen = 2 // version and kind
	cursorMACLen    = 16
)

var errBadCursor = errors.New("cursor was not issued by this service")

type cursorCodec struct{ key []byte }

func (c cursorCodec) mac(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(body)
	return m.Sum(nil)[:cursorMACLen]
}

// encode returns the cursor for a position of a listing.
func (c cursorCodec) encode(kind cursorKind, position []byte) string {
	body := append([]byte{cursorVersion, byte(kind)}, position...)
	return base64.RawURLEncoding.EncodeToString(append(body, c.mac(body)...))
}

// decode returns the position of a cursor of the given kind.
func (c cursorCodec) decode(kind cursorKind, cursor string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < cursorHeaderLen+cursorMACLen {
		return nil, errBadCursor
	}
	body, sum := raw[:len(raw)-cursorMACLen], raw[len(raw)-cursorMACLen:]
	if !hmac.Equal(sum, c.mac(body)) || body[0] != cursorVersion || cursorKind(body[1]) != kind {
		return nil, errBadCursor
	}
	return body[cursorHeaderLen:], nil
}
