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
	broker := client.LeastLoadedBroker()
	if broker == nil {
		return nil, errors.New("topics: ids: no broker is reachable")
	}
	if ok, _ := broker.Connected(); !ok {
		if err := broker.Open(client.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return nil, fmt.Errorf("topics: ids: %w", err)
		}
	}
	resp, err := broker.GetMetadata(&sarama.MetadataRequest{Version: 10, Topics: names})
	if err != nil {
		return nil, fmt.Errorf("topics: ids: %w", err)
	}
	ids := make(map[string]string, len(names))
	for _, t := range resp.Topics {
		if !errors.Is(t.Err, sarama.ErrNoError) {
			return nil, fmt.Errorf("topics: ids: %s: %w", t.Name, t.Err)
		}
		if t.Uuid == (sarama.Uuid{}) {
			return nil, fmt.Errorf("topics: ids: the broker gave no topic ID for %s", t.Name)
		}
		ids[t.Name] = t.Uuid.String()
	}
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			return nil, fmt.Errorf("topics: ids: %s is not in the broker's metadata", n)
		}
	}
	return ids, nil
}

// Identities holds the Kafka topic IDs of a group's inputs, read with IDs
// when the group starts; a group's callbacks ask it for their record's
// topic. Safe for concurrent use; the zero value (and nil) knows no topic.
type Identities struct {
	ids atomic.Pointer[identities]
}

type identities struct {
	id, tagged map[string]string
}

// Set replaces the IDs (topic name → Kafka topic ID).
func (t *Identities) Set(ids map[string]string) {
	m := identities{id: make(map[string]string, len(ids)), tagged: make(map[string]string, len(ids))}
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

// Load reads the IDs of names through client into t.
func (t *Identities) Load(client sarama.Client, names ...string) error {
	ids, err := IDs(client, names...)
	if err != nil {
		return err
	}
	t.Set(ids)
	return nil
}
