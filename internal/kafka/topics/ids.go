package topics

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// IDs returns the Kafka topic IDs of names: a topic deleted and created
// again under the same name has a new ID, so a position recorded on the old
// topic is not mistaken for one on the new.
func IDs(client sarama.Client, names ...string) (map[string]string, error) {
	ids, _, err := describe(client, names...)
	return ids, err
}

// describe returns the Kafka topic IDs and partition counts of names.
func describe(client sarama.Client, names ...string) (map[string]string, map[string]int, error) {
	broker := client.LeastLoadedBroker()
	if broker == nil {
		return nil, nil, errors.New("topics: ids: no broker is reachable")
	}
	if ok, _ := broker.Connected(); !ok {
		if err := broker.Open(client.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return nil, nil, fmt.Errorf("topics: ids: %w", err)
		}
	}
	resp, err := broker.GetMetadata(&sarama.MetadataRequest{Version: 10, Topics: names})
	if err != nil {
		return nil, nil, fmt.Errorf("topics: ids: %w", err)
	}
	ids, partitions := make(map[string]string, len(names)), make(map[string]int, len(names))
	for _, t := range resp.Topics {
		if !errors.Is(t.Err, sarama.ErrNoError) {
			return nil, nil, fmt.Errorf("topics: ids: %s: %w", t.Name, t.Err)
		}
		if t.Uuid == (sarama.Uuid{}) {
			return nil, nil, fmt.Errorf("topics: ids: the broker gave no topic ID for %s", t.Name)
		}
		ids[t.Name] = t.Uuid.String()
		partitions[t.Name] = len(t.Partitions)
	}
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			return nil, nil, fmt.Errorf("topics: ids: %s is not in the broker's metadata", n)
		}
	}
	return ids, partitions, nil
}

// Identities holds the Kafka topic IDs of a group's inputs, read with IDs
// when the group starts; a group's callbacks ask it for their record's
// topic. Safe for concurrent use; the zero value (and nil) knows no topic.
type Identities struct {
	ids atomic.Pointer[identities]
}

type identities struct {
	id, tagged map[string]string
	partitions map[string]int
}

// Set replaces the IDs (topic name → Kafka topic ID).
func (t *Identities) Set(ids map[string]string) { t.set(ids, nil) }

func (t *Identities) set(ids map[string]string, partitions map[string]int) {
	m := identities{id: make(map[string]string, len(ids)), tagged: make(map[string]string, len(ids)), partitions: partitions}
	for name, id := range ids {
		m.id[name], m.tagged[name] = id, "id:"+id
	}
	t.ids.Store(&m)
}

// ID returns topic's Kafka topic ID, or "" when t does not know it.
func (t *Identities) ID(topic string) string {
	if t == nil {
		return ""
	}
	if m := t.ids.Load(); m != nil {
		return m.id[topic]
	}
	return ""
}

// Identity returns "id:" and topic's Kafka topic ID, or topic itself when
// t does not know it: one string that tells a recreated topic from the old
// (computed once in Set, not per record).
func (t *Identities) Identity(topic string) string {
	if t != nil {
		if m := t.ids.Load(); m != nil {
			if tagged, ok := m.tagged[topic]; ok {
				return tagged
			}
		}
	}
	return topic
}

// Partitions returns the partition count of topic as Load read it, or 0
// when t does not know it (Set records no counts).
func (t *Identities) Partitions(topic string) int {
	if t == nil {
		return 0
	}
	if m := t.ids.Load(); m != nil {
		return m.partitions[topic]
	}
	return 0
}

// Load reads the IDs and partition counts of names through client into t.
func (t *Identities) Load(client sarama.Client, names ...string) error {
	ids, partitions, err := describe(client, names...)
	if err != nil {
		return err
	}
	t.set(ids, partitions)
	return nil
}
