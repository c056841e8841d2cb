package service

import (
	"encoding/base64"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	c := cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	for _, seq := range []int64{1, 42, 1 << 40} {
		cur := c.encode(cursorListUsers, seq)
		got, err := c.decode(cursorListUsers, cur)
		if err != nil || got != seq {
			t.Fatalf("decode(encode(%d)) = %d, %v", seq, got, err)
		}
	}
	if got, err := c.decode(cursorListUsers, ""); got != 0 || err != nil {
		t.Fatalf("empty cursor = %d, %v", got, err)
	}
}

func TestCursorRejectsForeignCursors(t *testing.T) {
	c := cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}
	other := cursorCodec{key: []byte("another key, another database..")}
	valid := c.encode(cursorListUsers, 7)
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	tampered := append([]byte(nil), raw...)
	tampered[9] ^= 1 // change the sequence, keep the MAC
	for name, cur := range map[string]string{
		"case=garbage":          "not-a-cursor",
		"case=bad base64":       "%%%",
		"case=truncated":        valid[:len(valid)-2],
		"case=tampered seq":     base64.RawURLEncoding.EncodeToString(tampered),
		"case=other key":        other.encode(cursorListUsers, 7),
		"case=other query kind": c.encode(cursorKind(2), 7),
		"case=padded base64":    valid + "=",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.decode(cursorListUsers, cur); err == nil {
				t.Fatalf("cursor %q accepted", cur)
			}
		})
	}
}
