package apikeys_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestCreateAuthenticateRevoke(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := apikeys.NewStoreWith(apikeys.StoreConfig{Prefix: prefix, NoCache: true}, rdb) // every lookup asks Redis
	ctx := context.Background()

	k, token, err := store.Create(ctx, apikeys.Spec{Name: "site app", Studies: []string{"ONC-301"},
		Roles: []string{apikeys.RoleSubmit}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	raw := rdb.Get(ctx, prefix+"apikey:"+k.ID).Val()
	if strings.Contains(raw, strings.SplitN(token, "_", 3)[2]) {
		t.Fatal("the secret is stored in clear")
	}
	if ttl := rdb.TTL(ctx, prefix+"apikey:"+k.ID).Val(); ttl <= time.Hour {
		t.Fatalf("record TTL %v", ttl)
	}
	got, err := store.Authenticate(ctx, token)
	if err != nil || got.ID != k.ID || !got.MayActFor("ONC-301") || got.MayActFor("CAR-200") || got.Has(apikeys.RoleOperate) {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	for _, bad := range []string{"", "Bearer x", "epk_short_secret", token[:len(token)-1] + "x", "epk_" + k.ID + "_" + strings.Repeat("a", 43)} {
		if _, err := store.Authenticate(ctx, bad); !errors.Is(err, apikeys.ErrMalformed) && !errors.Is(err, apikeys.ErrUnknown) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, err := store.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Authenticate(ctx, token); !errors.Is(err, apikeys.ErrRevoked) {
		t.Fatalf("after revoke: %v", err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) != 1 || list[0].RevokedAt.IsZero() {
		t.Fatalf("list %+v %v", list, err)
	}
}

func TestSpecValidation(t *testing.T) {
	err := apikeys.Spec{Studies: []string{"bad study"}, Roles: []string{"admin"}}.Validate()
	for _, want := range []string{"name", "not a study id", `"admin"`, "lifetime"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestStaleKeyTrustedWhileRedisIsDown(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	_, token, err := apikeys.NewStore(rdb, prefix).Create(ctx, apikeys.Spec{Name: "x", Studies: []string{"*"},
		Roles: []string{apikeys.RoleSubmit}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gone := redis.NewClient(rdb.Options()) // a client we can cut off
	store := apikeys.NewStoreWith(apikeys.StoreConfig{Prefix: prefix, NoCache: true}, gone)
	if _, err := store.Authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	_ = gone.Close()
	if _, err := store.Authenticate(ctx, token); err != nil {
		t.Fatalf("known key while Redis is unreachable: %v", err)
	}
	if _, err := apikeys.NewStore(gone, prefix).Authenticate(ctx, token); !errors.Is(err, apikeys.ErrUnavailable) {
		t.Fatalf("never seen, Redis unreachable: %v, want ErrUnavailable", err)
	}
}
