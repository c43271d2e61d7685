package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/webhooks"
)

// A subscription made with an API key gets alerts while its key is valid
// for the alert's study; once the key is revoked (or for a study it does
// not cover) the alerts are dead-lettered for it, never sent. An operator's
// subscription (no owner) is not affected.
func TestDeliveryRechecksTheSubscriptionsOwner(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	store := webhooks.NewStore(rdb, prefix)
	keys := apikeys.NewStoreWith(apikeys.StoreConfig{Prefix: prefix, NoCache: true}, rdb)
	ctx := context.Background()
	owner, _, err := keys.Create(ctx, apikeys.Spec{Name: "subscriber", Studies: []string{"ONC-301"},
		Roles: []string{apikeys.RoleRead}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	sub := subscribe(t, store, rc, webhooks.Spec{Owner: owner.ID}) // every study, but the key covers ONC-301 only
	ops := newReceiver(t, nil)
	subscribe(t, store, ops, webhooks.Spec{Studies: []string{"ONC-301"}})
	d := runWith(t, store, fastRetries, keys)

	waitAll(t, "before the revocation", enqueue(t, d,
		alert("o1", "ONC-301", "SITE-012", codecs.SeverityUrgent),
		alert("c1", "CAR-200", "SITE-001", codecs.SeverityUrgent), // outside the key's scope
	)...)
	wantReceived(t, rc, "o1")
	if _, err := keys.Revoke(ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	waitAll(t, "after the revocation", enqueue(t, d, alert("o2", "ONC-301", "SITE-012", codecs.SeverityUrgent))...)
	wantReceived(t, rc, "o1")
	wantReceived(t, ops, "o1", "o2")
	dead, err := store.DeadLetters(ctx, sub.ID, 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters %+v %v, want c1 and o2", dead, err)
	}
	for _, dl := range dead {
		if dl.Reason != webhooks.ReasonOwner || (dl.AlertID != "c1" && dl.AlertID != "o2") {
			t.Errorf("dead letter %+v, want reason %q for c1 and o2", dl, webhooks.ReasonOwner)
		}
	}
}
