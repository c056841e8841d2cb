package service

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

// EventOps names the analytic events of each RPC (<OP>_START, _SUCCESS,
// _FAIL); "" records none. A test walks the service descriptor so no RPC
// is forgotten.
var EventOps = events.Ops{
	usersv1.UserService_CreateUser_FullMethodName:  "USER_CREATE",
	usersv1.UserService_GetUser_FullMethodName:     "USER_RETRIEVE",
	usersv1.UserService_UpdateUser_FullMethodName:  "USER_UPDATE",
	usersv1.UserService_DeleteUser_FullMethodName:  "USER_DELETE",
	usersv1.UserService_ListUsers_FullMethodName:   "USER_RETRIEVE_LIST",
	usersv1.UserService_SearchUsers_FullMethodName: "USER_SEARCH",
	// Reading the trail is not a users operation; it would also flood the
	// trail with its own reads.
	usersv1.UserService_ListEvents_FullMethodName: "",
}

const (
	// maxFilterValues bounds each comma-separated filter list.
	maxFilterValues = 100
	// maxFilterWordLen bounds one category or type.
	maxFilterWordLen = 64
	// eventTimeLayout is RFC 3339 in UTC with exactly three fractional digits.
	eventTimeLayout = "2006-01-02T15:04:05.000Z"
	// eventPositionLen is a cursor position: unix ms (8) and event id (16).
	eventPositionLen = 8 + 16
)

// ListEvents returns analytic events, newest first.
func (s *Users) ListEvents(ctx context.Context, req *usersv1.ListEventsRequest) (*usersv1.ListEventsResponse, error) {
	var vs violations
	categories := filterList(&vs, "categories", req.GetCategories(), checkWord)
	f := store.EventFilter{
		Limit:      pageSize(&vs, req.Limit),
		IDs:        filterList(&vs, "ids", req.GetIds(), rules.CanonicalUUID),
		RequestIDs: filterList(&vs, "request_ids", req.GetRequestIds(), checkRequestID),
		Types:      filterList(&vs, "types", req.GetTypes(), checkWord),
		From:       filterTime(&vs, "date_from", req.GetDateFrom(), rules.FromMillisecond),
		To:         filterTime(&vs, "date_to", req.GetDateTo(), rules.ToMillisecond),
		Before:     s.eventCursor(&vs, req.GetCursor()),
	}
	if f.From != nil && f.To != nil && f.From.After(*f.To) {
		vs.add("date_to", "must not be before date_from")
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	if !resolveCategories(categories, &f) {
		return &usersv1.ListEventsResponse{Data: []*usersv1.Event{}}, nil
	}
	page, more, err := s.store.ListEvents(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	resp := &usersv1.ListEventsResponse{Data: make([]*usersv1.Event, len(page))}
	for i, ev := range page {
		if resp.Data[i], err = eventToPB(ev); err != nil {
			return nil, err
		}
	}
	if more {
		next := s.cursors.encode(cursorListEvents, eventPosition(page[len(page)-1]))
		resp.NextCursor = &next
	}
	return resp, nil
}

// resolveCategories applies the category filter to f here, where the
// categories are known: every event this service records is of category
// events.CategoryUser. Naming it matches every event, whatever the types
// (categories OR types); naming only others leaves the types to match.
// It reports false when the filter can match no event at all. The stores
// have no category filter, and need no category index.
func resolveCategories(categories []string, f *store.EventFilter) bool {
	switch {
	case len(categories) == 0:
		return true
	case slices.Contains(categories, events.CategoryUser):
		f.Types = nil
		return true
	}
	return len(f.Types) > 0
}

// filterList splits a comma-separated filter and checks each value,
// returning the values in canonical form; an empty string does not filter.
func filterList(vs *violations, field, raw string, canonical func(string) (string, bool)) []string {
	if raw == "" {
		return nil
	}
	values := strings.Split(raw, ",")
	if len(values) > maxFilterValues {
		vs.add(field, "must list at most %d values", maxFilterValues)
		return nil
	}
	for i, v := range values {
		c, ok := canonical(v)
		if !ok {
			vs.add(field, "has an invalid value at position %d", i+1)
			return nil
		}
		values[i] = c
	}
	return values
}

func checkRequestID(v string) (string, bool) { return v, requestid.Valid(v) }

// checkWord accepts a category or an event type: 1..64 characters of
// [A-Za-z0-9_.-]. Unknown ones simply match nothing.
func checkWord(v string) (string, bool) {
	return v, len(v) <= maxFilterWordLen && requestid.Valid(v)
}

// filterTime parses an RFC 3339 bound and rounds it to the stored
// millisecond precision so that bounds stay inclusive.
func filterTime(vs *violations, field, raw string, round func(time.Time) time.Time) *time.Time {
	if raw == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		vs.add(field, "must be an RFC 3339 date-time, e.g. 2026-11-28T13:02:05.123Z")
		return nil
	}
	t = round(t.UTC())
	return &t
}

// eventPosition encodes where a listing stopped: the last event's time and id.
func eventPosition(ev store.Event) []byte {
	pos := binary.BigEndian.AppendUint64(nil, uint64(ev.Time.UnixMilli()))
	id, _ := uuid.Parse(ev.ID) // ids are UUIDs we generated
	return append(pos, id[:]...)
}

// eventCursor decodes a ListEvents cursor; "" is the newest event.
func (s *Users) eventCursor(vs *violations, cursor string) *store.EventPosition {
	if cursor == "" {
		return nil
	}
	pos, err := s.cursors.decode(cursorListEvents, cursor)
	if err != nil || len(pos) != eventPositionLen {
		vs.add("cursor", "%s", errBadCursor)
		return nil
	}
	id, _ := uuid.FromBytes(pos[8:])
	return &store.EventPosition{Time: time.UnixMilli(int64(binary.BigEndian.Uint64(pos[:8]))).UTC(), ID: id.String()}
}

// eventToPB converts a stored event; data is always null.
func eventToPB(ev store.Event) (*usersv1.Event, error) {
	meta, err := decodeStruct(string(ev.Metadata))
	if err != nil {
		return nil, fmt.Errorf("event %s: decode metadata: %w", ev.ID, err)
	}
	return &usersv1.Event{
		Id:        ev.ID,
		Type:      ev.Type,
		Timestamp: ev.Time.UTC().Format(eventTimeLayout),
		Category:  ev.Category,
		RequestId: ev.RequestID,
		ClientId:  ev.ClientID,
		Metadata:  meta,
		Data:      structpb.NewNullValue(),
	}, nil
}
