package service

import (
	"strings"
	"testing"
	"time"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rules"
	"github.com/usersd/usersd/internal/store"
)

// Every RPC must say which events it records ("" for none, deliberately).
func TestEventOpsCoverEveryRPC(t *testing.T) {
	methods := usersv1.File_users_v1_users_proto.Services().ByName("UserService").Methods()
	for i := 0; i < methods.Len(); i++ {
		name := "/users.v1.UserService/" + string(methods.Get(i).Name())
		if _, ok := EventOps[name]; !ok {
			t.Errorf("%s has no entry in EventOps", name)
		}
	}
	if len(EventOps) != methods.Len() {
		t.Errorf("EventOps has %d entries for %d RPCs", len(EventOps), methods.Len())
	}
}

func TestListEventsValidation(t *testing.T) {
	s := &Users{cursors: cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}}
	i := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		name string
		req  *usersv1.ListEventsRequest
		want []string
	}{
		{"case=bad ids", &usersv1.ListEventsRequest{Ids: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70,nope"}, []string{"ids"}},
		{"case=empty item", &usersv1.ListEventsRequest{Types: "USER_CREATE_START,"}, []string{"types"}},
		{"case=bad request id", &usersv1.ListEventsRequest{RequestIds: "ok-1,has space"}, []string{"request_ids"}},
		{"case=bad category", &usersv1.ListEventsRequest{Categories: strings.Repeat("c", 65)}, []string{"categories"}},
		{"case=too many values", &usersv1.ListEventsRequest{Types: strings.Repeat("T,", 100) + "T"}, []string{"types"}},
		{"case=bad dates", &usersv1.ListEventsRequest{DateFrom: "yesterday", DateTo: "2026-13-01T00:00:00Z"}, []string{"date_from", "date_to"}},
		{"case=dates reversed", &usersv1.ListEventsRequest{DateFrom: "2026-11-28T00:00:00Z", DateTo: "2026-11-27T00:00:00Z"}, []string{"date_to"}},
		{"case=limit and cursor", &usersv1.ListEventsRequest{Limit: i(0), Cursor: "x"}, []string{"limit", "cursor"}},
		{"case=users cursor on events", &usersv1.ListEventsRequest{Cursor: s.cursors.encode(cursorListUsers, make([]byte, 8))}, []string{"cursor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ListEvents(t.Context(), tc.req)
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("err %v, want a validation error", err)
			}
			var got []string
			for _, v := range ve.Violations {
				got = append(got, v.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("violations on %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterTimeRoundsToInclusiveMilliseconds(t *testing.T) {
	var vs violations
	from := filterTime(&vs, "f", "2026-11-28T13:02:05.1231+01:00", rules.FromMillisecond)
	to := filterTime(&vs, "t", "2026-11-28T13:02:05.1239Z", rules.ToMillisecond)
	if len(vs) != 0 {
		t.Fatal(vs)
	}
	if got := from.Format(eventTimeLayout); got != "2026-11-28T12:02:05.124Z" {
		t.Errorf("from %s", got)
	}
	if got := to.Format(eventTimeLayout); got != "2026-11-28T13:02:05.123Z" {
		t.Errorf("to %s", got)
	}
}

func TestEventToPB(t *testing.T) {
	ev := store.Event{
		ID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", Time: time.Date(2026, 11, 28, 13, 2, 5, 0, time.UTC),
		Type: "USER_UPDATE_SUCCESS", Category: "user", RequestID: "r", ClientID: "c", Metadata: []byte(`{"userId":"u"}`),
	}
	pb, err := eventToPB(ev)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Timestamp != "2026-11-28T13:02:05.000Z" || pb.Metadata.Fields["userId"].GetStringValue() != "u" || pb.Data.GetKind() == nil {
		t.Fatalf("%+v", pb)
	}
}

func TestEventCursorRoundTrip(t *testing.T) {
	s := &Users{cursors: cursorCodec{key: []byte("0123456789abcdef0123456789abcdef")}}
	ev := store.Event{ID: "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", Time: time.UnixMilli(1795877756123).UTC()}
	var vs violations
	pos := s.eventCursor(&vs, s.cursors.encode(cursorListEvents, eventPosition(ev)))
	if len(vs) != 0 || pos == nil || pos.ID != ev.ID || !pos.Time.Equal(ev.Time) {
		t.Fatalf("position %+v, violations %v", pos, vs)
	}
}
