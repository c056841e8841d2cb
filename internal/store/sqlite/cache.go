package sqlite

import (
	"sync"

	"github.com/usersd/usersd/internal/store"
)

// DefaultUserCacheBytes bounds the users GetUser keeps in memory unless
// Options says otherwise: about 13,000 accounts of the size the benchmark
// harness creates (a few hundred bytes of claims and a provider link).
const DefaultUserCacheBytes = 8 << 20

// entryOverhead is what an entry costs beyond its strings: the store.User
// value, its provider link and the map's slot, rounded up.
const entryOverhead = 256

// userCache keeps users read by GetUser, so that a repeated read skips
// SQLite, which is about a fifth of a REST GET's CPU. It is only correct
// while this process is the only writer of the database file, which Open
// makes sure of with a lock (see lockFile).
//
// A write makes the cache forget its user before changing the row (hold)
// and lets it remember the user again only once the write's transaction
// has ended (release): meanwhile, reads of that user go to the database,
// and whatever they read is not kept. A read that began before a hold or
// release, and so may hold the row as it was, is not kept either: gen
// counts holds and releases, and add keeps a user only when gen has not
// moved since the read began. So the cache never serves a version older
// than the last one committed, once that commit is acknowledged.
type userCache struct {
	mu    sync.Mutex
	users map[string]store.User
	held  map[string]int // users being written: writes in flight
	gen   uint64
	bytes int // of the users kept, by entrySize
	limit int
}

// newUserCache returns a cache of at most limit bytes (by entrySize); nil
// when limit is not positive: a nil cache keeps nothing.
func newUserCache(limit int) *userCache {
	if limit <= 0 {
		return nil
	}
	return &userCache{users: map[string]store.User{}, held: map[string]int{}, limit: limit}
}

func entrySize(u *store.User) int {
	n := entryOverhead + len(u.ID) + len(u.Claims) // the map's key shares the ID's bytes
	if p := u.Provider; p != nil {
		n += len(p.ProviderID) + len(p.URL) + len(p.SubjectID)
	}
	return n
}

// get returns the kept user with the given id, if any, and the generation
// to pass to add after a read of the database.
func (c *userCache) get(id string) (store.User, bool, uint64) {
	if c == nil {
		return store.User{}, false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.users[id]
	return u, ok, c.gen
}

// add keeps u, read from the database since get returned gen, unless a
// write of any user was held or released meanwhile, or u's is in flight.
// To make room it forgets users picked at random (map order), which keeps
// a hot set mostly in: a user read often is soon back.
func (c *userCache) add(u store.User, gen uint64) {
	if c == nil {
		return
	}
	size := entrySize(&u)
	if size > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.held[u.ID] > 0 {
		return
	}
	if old, ok := c.users[u.ID]; ok {
		c.bytes -= entrySize(&old)
		delete(c.users, u.ID)
	}
	for id, old := range c.users {
		if c.bytes+size <= c.limit {
			break
		}
		c.bytes -= entrySize(&old)
		delete(c.users, id)
	}
	c.users[u.ID] = u
	c.bytes += size
}

// hold forgets the user with the given id and keeps the cache from
// learning it again until release: its row is about to change.
func (c *userCache) hold(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.users[id]; ok {
		c.bytes -= entrySize(&old)
		delete(c.users, id)
	}
	c.held[id]++
	c.gen++
}

// release ends a hold of each id, once the transaction that wrote them
// has committed or rolled back.
func (c *userCache) release(ids []string) {
	if c == nil || len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if c.held[id] <= 1 {
			delete(c.held, id)
		} else {
			c.held[id]--
		}
	}
	c.gen++
}
