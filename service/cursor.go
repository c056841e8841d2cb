package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Cursors are opaque to clients but carry the keyset position: the
// creation sequence of the last user on the page. They are signed with a
// per-database key, so a cursor the server did not issue (or one issued for
// another query kind) is refused instead of silently paging somewhere.
//
// Layout before base64url: version (1) | kind (1) | seq (8, big endian) |
// HMAC-SHA256 of the preceding bytes, truncated to 16 bytes.

type cursorKind byte

const (
	cursorVersion byte = 1
	// cursorListUsers marks cursors issued by ListUsers.
	cursorListUsers cursorKind = 1
	cursorBodyLen              = 1 + 1 + 8
	cursorMACLen               = 16
)

var errBadCursor = errors.New("cursor was not issued by this service")

type cursorCodec struct{ key []byte }

func (c cursorCodec) mac(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(body)
	return m.Sum(nil)[:cursorMACLen]
}

// encode returns the cursor that continues after seq.
func (c cursorCodec) encode(kind cursorKind, seq int64) string {
	buf := make([]byte, cursorBodyLen, cursorBodyLen+cursorMACLen)
	buf[0], buf[1] = cursorVersion, byte(kind)
	binary.BigEndian.PutUint64(buf[2:], uint64(seq))
	return base64.RawURLEncoding.EncodeToString(append(buf, c.mac(buf)...))
}

// decode returns the sequence a cursor continues after; "" means the start.
func (c cursorCodec) decode(kind cursorKind, cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) != cursorBodyLen+cursorMACLen {
		return 0, errBadCursor
	}
	body, sum := raw[:cursorBodyLen], raw[cursorBodyLen:]
	if !hmac.Equal(sum, c.mac(body)) || body[0] != cursorVersion || cursorKind(body[1]) != kind {
		return 0, errBadCursor
	}
	seq := int64(binary.BigEndian.Uint64(body[2:]))
	if seq < 0 {
		return 0, errBadCursor
	}
	return seq, nil
}
