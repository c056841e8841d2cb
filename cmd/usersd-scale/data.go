package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/usersd/usersd/internal/store"
)

// The seeded data is a function of the user's number i alone (and of
// dataSeed), so the benchmark knows what it searches for without reading
// the database: user i has email user<i>@example.com, externalId ext-<i>,
// cohort c-<i mod cohorts>, postcode <i mod postcodes> in its address, and
// is linked (unless i mod 10 is 9) to provider i mod len(providers) as
// subject oauth2|<i>.
const (
	dataSeed  = 0x7573_6572_7364 // "usersd"
	cohorts   = 100              // at 1,000,000 users, 10,000 per cohort
	postcodes = 50_000           // at 1,000,000 users, 20 per postcode
)

// seededFrom is when user 0 was created; user i was created i ms later,
// which also makes the UUIDv7-shaped ids unique and in creation order, as
// the service's own ids are.
var seededFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type provider struct{ id, url string }

var providers = []provider{
	{"41458e5a-9092-40b7-9a26-d4eb43c5792f", "https://example-university.au.auth0.com"},
	{"5b0e8d4a-3c1f-4e6b-9a2d-7f8e9c0b1a2d", "https://login.example.com/oidc"},
	{"9f3c2b1a-8e7d-4c6b-a5f4-e3d2c1b0a987", "https://accounts.example.org"},
}

var (
	givenNames  = []string{"Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiroshi", "Isla", "Jonas", "Kiri", "Liam", "Mei", "Noah", "Olivia", "Priya", "Quentin", "Rangi", "Sofia", "Tane"}
	familyNames = []string{"Smith", "Ngata", "García", "Müller", "Wang", "Kumar", "O'Brien", "Tanaka", "Rossi", "Cohen", "Silva", "Kowalski", "Nguyen", "Brown", "Williams", "Taylor"}
	places      = [][2]string{{"NZ", "Wellington"}, {"NZ", "Auckland"}, {"AU", "Sydney"}, {"AU", "Melbourne"}, {"GB", "London"}, {"DE", "Berlin"}, {"FR", "Paris"}, {"JP", "Tokyo"}, {"US", "Seattle"}, {"CA", "Toronto"}}
	tagNames    = []string{"alumni", "staff", "student", "newsletter", "beta", "vip", "mobile", "sso", "mfa", "legacy", "partner", "support"}
)

type address struct {
	Country  string `json:"country"`
	City     string `json:"city"`
	Postcode string `json:"postcode"`
}

type claims struct {
	GivenName   string   `json:"givenName"`
	FamilyName  string   `json:"familyName"`
	Email       string   `json:"email"`
	DateOfBirth string   `json:"dateOfBirth"`
	ExternalID  string   `json:"externalId"`
	Cohort      string   `json:"cohort"`
	Address     address  `json:"address"`
	Tags        []string `json:"tags"`
}

// rng is user i's own random source: the same numbers for i on every run
// and in every process, whatever order users are made in.
func rng(i int) *rand.Rand { return rand.New(rand.NewPCG(dataSeed, uint64(i))) }

// userID is UUIDv7-shaped: the creation millisecond, then random bits
// from a stream of i's own apart from the claims'.
func userID(i int) string {
	r := rand.New(rand.NewPCG(dataSeed+1, uint64(i)))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(createdAt(i).UnixMilli())<<16|r.Uint64()&0xffff)
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	b[6] = 0x70 | b[6]&0x0f // version 7
	b[8] = 0x80 | b[8]&0x3f // RFC 9562 variant
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func createdAt(i int) time.Time { return seededFrom.Add(time.Duration(i) * time.Millisecond) }

func email(i int) string      { return fmt.Sprintf("user%d@example.com", i) }
func externalID(i int) string { return fmt.Sprintf("ext-%d", i) }
func cohort(i int) string     { return fmt.Sprintf("c-%d", i%cohorts) }
func postcode(i int) string   { return fmt.Sprintf("%05d", i%postcodes) }
func subject(i int) string    { return fmt.Sprintf("oauth2|%d", i) }

// linked reports whether user i has a provider link; link is the link.
func linked(i int) bool { return i%10 != 9 }

func link(i int) *store.ProviderLink {
	if !linked(i) {
		return nil
	}
	p := providers[i%len(providers)]
	return &store.ProviderLink{ProviderID: p.id, URL: p.url, SubjectID: subject(i)}
}

// user is user i as the seeder stores it.
func user(i int) (store.User, error) {
	r := rng(i)
	place := places[r.IntN(len(places))]
	tags := make([]string, 1+r.IntN(3))
	for k := range tags {
		tags[k] = tagNames[r.IntN(len(tagNames))]
	}
	c := claims{
		GivenName:   givenNames[r.IntN(len(givenNames))],
		FamilyName:  familyNames[r.IntN(len(familyNames))],
		Email:       email(i),
		DateOfBirth: time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(65*365)).Format(time.DateOnly),
		ExternalID:  externalID(i),
		Cohort:      cohort(i),
		Address:     address{Country: place[0], City: place[1], Postcode: postcode(i)},
		Tags:        tags,
	}
	b, err := json.Marshal(c)
	if err != nil {
		return store.User{}, fmt.Errorf("claims of user %d: %w", i, err)
	}
	return store.User{ID: userID(i), Claims: string(b), Provider: link(i), CreatedAt: createdAt(i)}, nil
}
