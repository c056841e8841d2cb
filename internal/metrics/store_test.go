package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/usersd/usersd/internal/store"
)

func TestOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                      "ok",
		fmt.Errorf("get: %w", store.ErrNotFound): "not_found",
		fmt.Errorf("create: %w", store.ErrProviderLinkConflict): "conflict",
		fmt.Errorf("append: %w", store.ErrUnavailable):          "unavailable",
		fmt.Errorf("update: %w", store.ErrVersionMismatch):      "version_mismatch",
		errors.New("disk full"):                                 "error",
	} {
		if got := outcome(err); got != want {
			t.Errorf("outcome(%v) = %q, want %q", err, got, want)
		}
	}
}

// notFoundStore fails every lookup; only GetUser is called.
type notFoundStore struct{ store.Store }

func (notFoundStore) GetUser(context.Context, string) (store.User, error) {
	return store.User{}, fmt.Errorf("sqlite: %w", store.ErrNotFound)
}

// The deferred observation must see the error the call returned.
func TestInstrumentStoreRecordsTheFinalOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := InstrumentStore(notFoundStore{}, reg)
	if _, err := st.GetUser(t.Context(), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("error %v not passed through", err)
	}
	n, err := testutil.GatherAndCount(reg, "usersd_store_operation_duration_seconds")
	if err != nil || n != 1 {
		t.Fatalf("%d series, %v", n, err)
	}
	h, _ := reg.Gather()
	labels := h[0].GetMetric()[0].GetLabel()
	if labels[0].GetValue() != "get_user" || labels[1].GetValue() != "not_found" {
		t.Fatalf("labels %v", labels)
	}
}
