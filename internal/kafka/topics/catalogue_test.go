package topics_test

import (
	"testing"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// With three replicas, an acks=all write is on two brokers before it is
// acknowledged; with fewer the broker's own min.insync.replicas applies.
func TestCatalogueMinInsyncReplicasFollowsReplication(t *testing.T) {
	for _, c := range []struct {
		replication int
		want        string // "" = not set: the broker's default
	}{{1, ""}, {2, ""}, {3, "2"}, {5, "2"}} {
		specs := topics.Catalogue("p.", 6, c.replication)
		if len(specs) == 0 {
			t.Fatal("empty catalogue")
		}
		for _, s := range specs {
			got, set := s.Config["min.insync.replicas"]
			if c.want == "" && set {
				t.Errorf("replication %d: %s sets min.insync.replicas=%s, want the broker's default", c.replication, s.Name, got)
			}
			if c.want != "" && got != c.want {
				t.Errorf("replication %d: %s has min.insync.replicas=%q, want %s", c.replication, s.Name, got, c.want)
			}
			if int(s.ReplicationFactor) != c.replication {
				t.Errorf("%s: replication %d, want %d", s.Name, s.ReplicationFactor, c.replication)
			}
		}
	}
}
