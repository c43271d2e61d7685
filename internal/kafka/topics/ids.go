package topics

import (
	"errors"
	"fmt"

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
