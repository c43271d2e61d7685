package webhooks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/webhooks"
)

func TestStoreCreateGetListDelete(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := webhooks.NewStore(rdb, prefix)
	ctx := context.Background()

	sub, secret, err := store.Create(ctx, webhooks.Spec{Name: "pager", URL: "https://pager.example.org/h",
		Studies: []string{"ONC-301", "CAR-200", "ONC-301"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
		t.Fatalf("secret %q", secret)
	}
	if sub.MinSeverity != codecs.SeverityInfo || strings.Join(sub.Studies, ",") != "CAR-200,ONC-301" {
		t.Fatalf("not normalised: %+v", sub)
	}
	for key, atLeast := range map[string]time.Duration{
		prefix + "webhook:sub:" + sub.ID: 364 * 24 * time.Hour,
		prefix + "webhook:subs":          364 * 24 * time.Hour,
	} {
		if ttl := rdb.TTL(ctx, key).Val(); ttl < atLeast {
			t.Errorf("%s: TTL %v", key, ttl)
		}
	}
	got, err := store.Get(ctx, sub.ID)
	if err != nil || got.URL != sub.URL || !got.CreatedAt.Equal(sub.CreatedAt) {
		t.Fatalf("get: %+v %v", got, err)
	}
	other, _, err := store.Create(ctx, webhooks.Spec{Name: "dash", URL: "http://127.0.0.1:9/h", Studies: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	paused, err := store.SetPaused(ctx, other.ID, true)
	if err != nil || !paused.Paused {
		t.Fatalf("pause: %+v %v", paused, err)
	}
	if err := store.Delete(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		store.Delete(ctx, sub.ID),
		func() error { _, err := store.Get(ctx, sub.ID); return err }(),
		func() error { _, err := store.Status(ctx, sub.ID); return err }(),
		func() error { _, err := store.SetPaused(ctx, sub.ID, false); return err }(),
		func() error { _, err := store.Get(ctx, "../../etc"); return err }(),
	} {
		if !errors.Is(err, webhooks.ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
	}
	list, err = store.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != other.ID || !list[0].Paused {
		t.Fatalf("list after delete: %+v %v", list, err)
	}
}

func TestStoreKeepsSecretOutOfListings(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := webhooks.NewStore(rdb, prefix)
	ctx := context.Background()
	sub, secret, err := store.Create(ctx, webhooks.Spec{Name: "x", URL: "https://example.org/h", Studies: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := store.Get(ctx, sub.ID)
	list, _ := store.List(ctx)
	for _, s := range append(list, got) {
		if strings.Contains(strings.Join([]string{s.ID, s.Name, s.URL}, " "), secret) {
			t.Fatal("the secret appears in a listing")
		}
	}
}

func TestStoreRequireHTTPS(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := webhooks.NewStore(rdb, prefix)
	store.RequireHTTPS = true
	_, _, err := store.Create(context.Background(), webhooks.Spec{Name: "x", URL: "http://example.org/h", Studies: []string{"*"}})
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http URL accepted: %v", err)
	}
}
