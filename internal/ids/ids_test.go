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

// Millis reads back the millisecond an id carries: NewV7's, and
// google/uuid's reading of any UUIDv7; text without hex digits there is
// refused.
func TestMillis(t *testing.T) {
	for range 1000 {
		s, made := NewV7Millis()
		u := uuid.MustParse(s)
		sec, nsec := u.Time().UnixTime()
		if ms, ok := Millis(s); !ok || ms != sec*1000+nsec/1e6 || ms != made {
			t.Fatalf("Millis(%s) = %d, %v; want %d, as NewV7Millis said (%d)", s, ms, ok, sec*1000+nsec/1e6, made)
		}
	}
	// Every event's write reads one: no allocation.
	if n := testing.AllocsPerRun(100, func() { Millis("0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70") }); n != 0 {
		t.Errorf("Millis allocates %v times", n)
	}
	for id, want := range map[string]int64{
		"0190A7C2-7E3B-7C41-9F3E-2B1C4D5E6F70": 0x0190a7c27e3b,
		"ffffffff-ffff-7fff-bfff-ffffffffffff": 0xffffffffffff,
		"00000000-0000-4000-8000-000000000000": 0,
	} {
		if ms, ok := Millis(id); !ok || ms != want {
			t.Errorf("Millis(%s) = %d, %v; want %d", id, ms, ok, want)
		}
	}
	for _, id := range []string{
		"", "x", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f7", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f700",
		"0190a7c2x7e3b-7c41-9f3e-2b1c4d5e6f70", "0190a7g2-7e3b-7c41-9f3e-2b1c4d5e6f70",
		"0190a7c2-7e3-b7c41-9f3e-2b1c4d5e6f70",
	} {
		if ms, ok := Millis(id); ok {
			t.Errorf("Millis(%q) = %d, true; want false", id, ms)
		}
	}
}

// Next and Prev step through the random bits only, carrying from the
// last group into the fourth, and refuse to leave them.
func TestNextPrev(t *testing.T) {
	for _, tc := range []struct{ id, next string }{
		{"0192f3a4-5b6c-7d8e-8000-000000000000", "0192f3a4-5b6c-7d8e-8000-000000000001"},
		{"0192f3a4-5b6c-7d8e-8000-00000000000f", "0192f3a4-5b6c-7d8e-8000-000000000010"},
		{"0192f3a4-5b6c-7d8e-8a3f-ffffffffffff", "0192f3a4-5b6c-7d8e-8a40-000000000000"},
		{"0192f3a4-5b6c-7d8e-bfff-fffffffffffe", "0192f3a4-5b6c-7d8e-bfff-ffffffffffff"},
	} {
		next, ok := Next(tc.id)
		if !ok || next != tc.next {
			t.Errorf("Next(%s) = %s, %v; want %s", tc.id, next, ok, tc.next)
		}
		prev, ok := Prev(tc.next)
		if !ok || prev != tc.id {
			t.Errorf("Prev(%s) = %s, %v; want %s", tc.next, prev, ok, tc.id)
		}
	}
	for _, id := range []string{"0192f3a4-5b6c-7d8e-bfff-ffffffffffff", "not-an-id", "0192f3a4-5b6c-7d8e-8000-00000000000g", "0192f3a4-5b6c-7d8e-8000-0000000000000"} {
		if next, ok := Next(id); ok {
			t.Errorf("Next(%s) = %s, want none", id, next)
		}
	}
	if prev, ok := Prev("0192f3a4-5b6c-7d8e-8000-000000000000"); ok {
		t.Errorf("Prev of the lowest random bits = %s, want none", prev)
	}
	// A made id's Next sorts before every id made after it.
	id := NewV7()
	next, _ := Next(id)
	if later := NewV7(); !(id < next && next < later) {
		t.Errorf("%s, Next %s, later %s: not in that order", id, next, later)
	}
}
