// Package ids makes the UUIDv7 strings usersd gives requests and events:
// unique, and, those of NewV7, ordered by creation time within the
// process. Next makes the id right after another, of its time: an
// operation's outcome takes its START's so, within its millisecond.
//
// github.com/google/uuid makes the same ids, but its NewV7 reads its
// random bytes through an io.Reader, so each id costs an allocation more
// than the string itself; a call makes up to three.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
)

var (
	mu sync.Mutex
	// last is the time of the last id: unix milliseconds << 12 | the
	// fraction of the millisecond in 1/4096ths, as google/uuid keeps it.
	last int64
)

// NewV7 returns a new UUIDv7 in canonical (lower-case) text: 48 bits of
// unix milliseconds, 12 bits of sub-millisecond time, both strictly
// increasing from one id to the next, then 62 random bits (RFC 9562,
// method 3).
func NewV7() string {
	id, _ := NewV7Millis()
	return id
}

// NewV7Millis is NewV7 that also returns the id's unix milliseconds, what
// Millis would read back from it.
func NewV7Millis() (id string, ms int64) {
	var u [16]byte
	rand.Read(u[:]) // never fails (it crashes the program instead)
	t := now()
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(t>>52), byte(t>>44), byte(t>>36), byte(t>>28), byte(t>>20), byte(t>>12)
	u[6] = 0x70 | byte(t>>8)&0x0f // version 7
	u[7] = byte(t)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	hex.Encode(s[9:13], u[4:6])
	hex.Encode(s[14:18], u[6:8])
	hex.Encode(s[19:23], u[8:10])
	hex.Encode(s[24:], u[10:])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:]), t >> 12
}

// Millis returns the unix milliseconds in the first 48 bits of a UUIDv7's
// text (NewV7's time, to the millisecond), and false when id is not 36
// characters with hex digits there.
func Millis(id string) (int64, bool) {
	if len(id) != 36 || id[8] != '-' {
		return 0, false
	}
	hi, errHi := strconv.ParseUint(id[:8], 16, 32)
	lo, errLo := strconv.ParseUint(id[9:13], 16, 16)
	if errHi != nil || errLo != nil {
		return 0, false
	}
	return int64(hi<<16 | lo), true
}

// now returns the time of a new id, after that of the last one.
func now() int64 {
	nano := time.Now().UnixNano()
	milli := nano / int64(time.Millisecond)
	t := milli<<12 | (nano-milli*int64(time.Millisecond))>>8
	mu.Lock()
	defer mu.Unlock()
	if t <= last {
		t = last + 1
	}
	last = t
	return t
}

// randBits masks the 62 random bits that end a UUIDv7 (after the two
// variant bits).
const randBits = 1<<62 - 1

// Next returns the id that follows id in its random bits: same time,
// random bits one more. No other id made by NewV7 in this process has
// id's time, so Next's is unique too, and nothing sorts between the two:
// the SQLite store keeps an operation's START and outcome in one row when
// their ids are so adjacent. It returns false when id is not canonical
// UUID text or its random bits are all ones.
func Next(id string) (string, bool) {
	return step(id, 1)
}

// Prev is the inverse of Next: the id whose Next is id.
func Prev(id string) (string, bool) {
	return step(id, -1)
}

// step adds d (±1) to the random bits of id, unless they would leave
// their 62 bits.
func step(id string, d int64) (string, bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return "", false
	}
	hi, errHi := strconv.ParseUint(id[19:23], 16, 16)
	lo, errLo := strconv.ParseUint(id[24:], 16, 48)
	if errHi != nil || errLo != nil {
		return "", false
	}
	v := hi<<48 | lo
	r := int64(v & randBits)
	if r+d < 0 || r+d > randBits {
		return "", false
	}
	v = v&^randBits | uint64(r+d)
	var s [36]byte
	copy(s[:], id)
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (56 - 8*i))
	}
	hex.Encode(s[19:23], b[0:2])
	hex.Encode(s[24:], b[2:])
	return string(s[:]), true
}
