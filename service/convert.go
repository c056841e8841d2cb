package service

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
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
// so REST prints `{}` rather than omitting them.
func userToPB(u store.User) (*usersv1.User, error) {
	claims, err := decodeClaims(u.Claims)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	return &usersv1.User{
		Id:                     u.ID,
		Claims:                 claims,
		AuthenticationProvider: providerToPB(u.Provider),
	}, nil
}

func usersToPB(us []store.User) ([]*usersv1.User, error) {
	out := make([]*usersv1.User, len(us))
	for i, u := range us {
		pb, err := userToPB(u)
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
