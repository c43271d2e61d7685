package topics_test

import (
	"testing"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// Identities answers a known topic with its Kafka ID (raw, and tagged for
// positions) and an unknown one with nothing (raw) or its name (tagged);
// a nil Identities knows no topic.
func TestIdentitiesTellTopicsByID(t *testing.T) {
	var none *topics.Identities
	if none.ID("epro-clean") != "" || none.Identity("epro-clean") != "epro-clean" {
		t.Fatalf("nil: %q %q", none.ID("epro-clean"), none.Identity("epro-clean"))
	}
	ids := &topics.Identities{}
	ids.Set(map[string]string{"epro-clean": "AAAA"})
	if got := ids.ID("epro-clean"); got != "AAAA" {
		t.Errorf("ID = %q, want AAAA", got)
	}
	if got := ids.Identity("epro-clean"); got != "id:AAAA" {
		t.Errorf("Identity = %q, want id:AAAA", got)
	}
	if ids.ID("epro-commands") != "" || ids.Identity("epro-commands") != "epro-commands" {
		t.Errorf("unknown topic: %q %q", ids.ID("epro-commands"), ids.Identity("epro-commands"))
	}
}
