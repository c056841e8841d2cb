package ids

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewV7IsAUUIDv7OfNow(t *testing.T) {
	before := time.Now().UnixMilli()
	s := NewV7()
	after := time.Now().UnixMilli()
	u, err := uuid.Parse(s)
	if err != nil || u.String() != s {
		t.Fatalf("%q: not canonical UUID text (%v)", s, err)
	}
	if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("%s: version %d, variant %v", s, u.Version(), u.Variant())
	}
	sec, nsec := u.Time().UnixTime()
	if ms := sec*1000 + nsec/1e6; ms < before || ms > after {
		t.Fatalf("%s: time %d ms, want %d..%d", s, ms, before, after)
	}
}

// Ids made one after another sort in that order, as text too, even many
// within one millisecond.
func TestNewV7IncreasesStrictly(t *testing.T) {
	prev := NewV7()
	for range 100_000 {
		next := NewV7()
		if next <= prev {
			t.Fatalf("%s after %s", next, prev)
		}
		prev = next
	}
}
