package topics_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/testenv"
)

// A topic created again under its old name has another ID: what the subject
// group's replay detection keys positions on.
func TestARecreatedTopicHasANewID(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "ids-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := cfg.TopicPrefix + "ids-probe"
	create := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("create %s: %v", name, err)
			}
			time.Sleep(200 * time.Millisecond) // the deletion is still under way
		}
	}
	id := func() string {
		t.Helper()
		client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("ids-test", cfg.DialTimeout))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ids, err := topics.IDs(client, name)
			if err == nil {
				return ids[name]
			}
			if time.Now().After(deadline) {
				t.Fatalf("ids: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	create()
	first := id()
	if len(first) != 22 && len(first) != 36 || first == (sarama.Uuid{}).String() {
		t.Fatalf("topic id %q", first)
	}
	if again := id(); again != first {
		t.Fatalf("the same topic's id changed: %s, then %s", first, again)
	}
	if err := admin.DeleteTopic(name); err != nil {
		t.Fatal(err)
	}
	create()
	if second := id(); second == first {
		t.Fatalf("the recreated topic kept the id %s", first)
	}
}

// Load records each topic's partition count, which the warehouse compares
// with its assignment to know whether it is the only writer.
func TestLoadReadsPartitionCounts(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "ids-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := cfg.TopicPrefix + "ids-partitions"
	if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	defer admin.DeleteTopic(name)
	client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("ids-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var ids topics.Identities
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ids.Load(client, name)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("load: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := ids.Partitions(name); n != 3 {
		t.Errorf("Partitions(%s) = %d, want 3", name, n)
	}
	if n := ids.Partitions(name + "-absent"); n != 0 {
		t.Errorf("an unknown topic has %d partitions, want 0", n)
	}
	var set topics.Identities
	set.Set(map[string]string{name: ids.ID(name)})
	if n := set.Partitions(name); n != 0 {
		t.Errorf("after Set alone: %d partitions, want 0 (unknown)", n)
	}
}
