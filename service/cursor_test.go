package service

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	c := cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	for _, pos := range [][]byte{{}, {1}, bytes.Repeat([]byte{0xff}, 24)} {
		cur := c.encode(cursorListUsers, pos)
		got, err := c.decode(cursorListUsers, cur)
		if err != nil || !bytes.Equal(got, pos) {
			t.Fatalf("decode(encode(%x)) = %x, %v", pos, got, err)
		}
	}
}

func TestCursorRejectsForeignCursors(t *testing.T) {
	c := cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	other := cursorCodec{key: []byte("another key, another database..")}
	valid := c.encode(cursorListUsers, []byte{0, 0, 0, 0, 0, 0, 0, 7})
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	tampered := append([]byte(nil), raw...)
	tampered[9] ^= 1 // change the position, keep the MAC
	for name, cur := range map[string]string{
		"case=empty":            "",
		"case=garbage":          "not-a-cursor",
		"case=bad base64":       "%%%",
		"case=truncated":        valid[:len(valid)-2],
		"case=tampered":         base64.RawURLEncoding.EncodeToString(tampered),
		"case=other key":        other.encode(cursorListUsers, []byte{7}),
		"case=other query kind": c.encode(cursorListEvents, []byte{0, 0, 0, 0, 0, 0, 0, 7}),
		"case=padded base64":    valid + "=",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.decode(cursorListUsers, cur); err == nil {
				t.Fatalf("cursor %q accepted", cur)
			}
		})
	}
}
