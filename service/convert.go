package service

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/store"
)

// emptyClaims is the stored form of "no claims".
var emptyClaims = []byte("{}")

// encodeClaims returns the canonical compact JSON of claims: sorted keys,
// no HTML escaping, `{}` for nil. It is what the store keeps and what the
// size limit measures.
func encodeClaims(claims *structpb.Struct) []byte {
	if len(claims.GetFields()) == 0 {
		return emptyClaims
	}
	return appendStruct(make([]byte, 0, 256), claims)
}

// decodeClaims turns stored claims back into a Struct.
func decodeClaims(data string) (*structpb.Struct, error) {
	claims, err := decodeStruct(data)
	if err != nil {
		return nil, fmt.Errorf("decode stored claims: %w", err)
	}
	return claims, nil
}

// userToPB converts a stored user to its API form. Claims are always set,
// so REST prints `{}` rather than omitting them, or else kept in texts for
// the gateway to write (claimsjson; texts is nil outside the gateway's
// in-process calls).
func userToPB(u store.User, texts *claimsjson.Texts) (*usersv1.User, error) {
	pb := &usersv1.User{Id: u.ID, AuthenticationProvider: providerToPB(u.Provider)}
	if texts != nil && texts.Add(pb, u.Claims) {
		return pb, nil
	}
	claims, err := decodeClaims(u.Claims)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	pb.Claims = claims
	return pb, nil
}

func usersToPB(us []store.User, texts *claimsjson.Texts) ([]*usersv1.User, error) {
	out := make([]*usersv1.User, len(us))
	for i, u := range us {
		pb, err := userToPB(u, texts)
		if err != nil {
			return nil, err
		}
		out[i] = pb
	}
	return out, nil
}

func providerToPB(p *store.ProviderLink) *usersv1.AuthenticationProvider {
	if p == nil {
		return nil
	}
	return &usersv1.AuthenticationProvider{ProviderId: p.ProviderID, Url: p.URL, SubjectId: p.SubjectID}
}

// providerFromPB converts a validated provider link; nil stays nil.
func providerFromPB(p *usersv1.AuthenticationProvider) *store.ProviderLink {
	if p == nil {
		return nil
	}
	return &store.ProviderLink{ProviderID: p.GetProviderId(), URL: p.GetUrl(), SubjectID: p.GetSubjectId()}
}
