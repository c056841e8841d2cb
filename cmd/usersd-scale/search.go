package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// searchScenarios search, each call for a random seeded user's values:
// by provider subject, one claim, two claims, a nested claim (about 20
// users share a postcode at a million), and a cohort of n/100 users (the
// first page, 10,000 matches at a million).
func searchScenarios(n int) []scenario {
	linkedUser := func(r *rand.Rand) int {
		for {
			if i := r.IntN(n); linked(i) {
				return i
			}
		}
	}
	byClaims := func(want int, claims func(i int) map[string]any) func(context.Context, usersv1.UserServiceClient, *rand.Rand) error {
		return func(ctx context.Context, c usersv1.UserServiceClient, r *rand.Rand) error {
			s, err := structpb.NewStruct(claims(r.IntN(n)))
			if err != nil {
				return err
			}
			return search(ctx, c, &usersv1.SearchUsersRequest{Claims: s}, want)
		}
	}
	return []scenario{
		{"SearchUsers provider subject", func(ctx context.Context, c usersv1.UserServiceClient, r *rand.Rand) error {
			l := link(linkedUser(r))
			return search(ctx, c, &usersv1.SearchUsersRequest{AuthenticationProvider: &usersv1.ProviderCriteria{ProviderId: l.ProviderID, SubjectId: l.SubjectID}}, 1)
		}},
		{"SearchUsers one claim", byClaims(1, func(i int) map[string]any { return map[string]any{"email": email(i)} })},
		{"SearchUsers two claims", byClaims(1, func(i int) map[string]any {
			return map[string]any{"cohort": cohort(i), "externalId": externalID(i)}
		})},
		{"SearchUsers nested claim", byClaims(-1, func(i int) map[string]any {
			return map[string]any{"address": map[string]any{"postcode": postcode(i)}}
		})},
		{fmt.Sprintf("SearchUsers %d matches, page 1", n/cohorts), byClaims(min(pageSize, n/cohorts), func(i int) map[string]any {
			return map[string]any{"cohort": cohort(i)}
		})},
	}
}

// search makes one search for the first page, checking it found want
// users (-1: at least one).
func search(ctx context.Context, c usersv1.UserServiceClient, req *usersv1.SearchUsersRequest, want int) error {
	limit := int32(pageSize)
	req.Limit = &limit
	resp, err := c.SearchUsers(ctx, req)
	if err != nil {
		return err
	}
	if got := len(resp.GetData()); got != want && (want >= 0 || got == 0) {
		return fmt.Errorf("search found %d users, want %d", got, want)
	}
	return nil
}
