package service

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/store"
)

// searchPositionLen is a search cursor's position: the digest of the
// criteria it was issued for, then the seq it continues after.
const searchPositionLen = sha256.Size + 8

// SearchUsers returns one page, in creation order, of the users matching
// every criterion given. The events carry the limit and the count found,
// never the criteria: they are personal data.
func (s *Users) SearchUsers(ctx context.Context, req *usersv1.SearchUsersRequest) (*usersv1.SearchUsersResponse, error) {
	var vs violations
	c := s.searchCriteria(&vs, req)
	limit := pageSize(&vs, req.Limit)
	digest := criteriaDigest(c)
	after := s.searchCursor(&vs, req.GetCursor(), digest)
	if err := vs.err(); err != nil {
		return nil, err
	}
	events.SetLimit(ctx, limit)
	page, more, err := s.store.SearchUsers(ctx, c, store.Page{Limit: limit, AfterSeq: after})
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	data, err := usersToPB(page, claimsjson.FromContext(ctx))
	if err != nil {
		return nil, err
	}
	events.SetEntriesCount(ctx, len(data))
	resp := &usersv1.SearchUsersResponse{Data: data}
	if more {
		pos := binary.BigEndian.AppendUint64(digest[:], uint64(page[len(page)-1].Seq))
		next := s.cursors.encode(cursorSearchUsers, pos)
		resp.NextCursor = &next
	}
	return resp, nil
}

// searchCriteria validates the criteria: claims as a user's claims (the
// same limits), provider fields by the rules of a link, each only when
// given. The provider id comes back canonical, as links are stored.
func (s *Users) searchCriteria(vs *violations, req *usersv1.SearchUsersRequest) store.Criteria {
	var c store.Criteria
	if req.GetClaims() != nil {
		c.Claims = checkClaims(vs, "claims", req.GetClaims(), s.limits)
	}
	p := req.GetAuthenticationProvider()
	const field = "authentication_provider"
	if id := p.GetProviderId(); id != "" {
		c.ProviderID = checkID(vs, field+".provider_id", id)
	}
	if u := p.GetUrl(); u != "" {
		checkURL(vs, field+".url", u)
		c.URL = u
	}
	if sub := p.GetSubjectId(); sub != "" && checkSubjectID(vs, field+".subject_id", sub) {
		c.SubjectID = sub
	}
	return c
}

// criteriaDigest identifies a search's criteria for its cursors: SHA-256
// of each part, length-prefixed so no two criteria encode alike. Claims
// are the canonical JSON (sorted keys, numbers in one spelling), so the
// same criteria in another key order or spacing keep their cursor; no
// claims and {} both select everyone and are one search.
func criteriaDigest(c store.Criteria) [sha256.Size]byte {
	claims := c.Claims
	if claims == nil {
		claims = emptyClaims
	}
	h := sha256.New()
	for _, part := range [][]byte{claims, []byte(c.ProviderID), []byte(c.SubjectID), []byte(c.URL)} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write(part)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// searchCursor decodes a SearchUsers cursor into the seq it continues
// after, refusing one issued for other criteria; "" is the start.
func (s *Users) searchCursor(vs *violations, cursor string, digest [sha256.Size]byte) int64 {
	if cursor == "" {
		return 0
	}
	pos, err := s.cursors.decode(cursorSearchUsers, cursor)
	if err != nil || len(pos) != searchPositionLen || int64(binary.BigEndian.Uint64(pos[sha256.Size:])) < 0 {
		vs.add("cursor", "%s", errBadCursor)
		return 0
	}
	if [sha256.Size]byte(pos[:sha256.Size]) != digest {
		vs.add("cursor", "was issued for other search criteria")
		return 0
	}
	return int64(binary.BigEndian.Uint64(pos[sha256.Size:]))
}
