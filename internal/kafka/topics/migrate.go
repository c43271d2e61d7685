// Migrate brings Kafka to the shape eprostream needs:
// it creates what is missing, leaves what is right alone, and refuses to go
// on when something that exists disagrees with the catalogue.
package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/IBM/sarama"
)

// ErrTopicMismatch is wrapped by every error about an existing topic whose
// settings differ from its spec.
var ErrTopicMismatch = errors.New("existing topic disagrees with its spec")

// checkedConfigs are the topic settings an existing topic must share with its
// spec; the others (retention, min.insync.replicas) are set when a topic is
// created and are operators' to tune afterwards.
var checkedConfigs = []string{"cleanup.policy"}

// Admin is a cluster admin that also gives the configuration its
// connections are made with (TLS, SASL): Migrate's probes of each broker
// open connections of their own with it.
type Admin interface {
	sarama.ClusterAdmin
	SaramaConfig() *sarama.Config
}

// Migrate creates the missing topics of specs and checks the existing ones.
// It is safe to run again, and by several processes at once.
func Migrate(ctx context.Context, admin Admin, specs []Spec, log *slog.Logger) error {
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("topics: list topics: %w", err)
	}
	var errs []error
	var created []string
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if detail, ok := existing[s.Name]; ok {
			if err := checkTopic(admin, s, detail); err != nil {
				errs = append(errs, err)
			} else {
				log.Debug("topic up to date", "topic", s.Name)
			}
			continue
		}
		ok, err := createTopic(admin, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			created = append(created, s.Name)
			minISR := s.Config["min.insync.replicas"]
			if minISR == "" {
				minISR = "broker default"
			}
			log.Info("topic created", "topic", s.Name, "partitions", s.Partitions, "replication", s.ReplicationFactor,
				"min_insync_replicas", minISR)
		}
	}
	if len(created) > 0 {
		errs = append(errs, waitVisible(ctx, admin, created))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w\n(fix the topics or the configuration: migrate never alters a topic that holds data)", err)
	}
	return nil
}

// createTopic creates s, or checks it when the broker says it exists already
// (a topic created moments ago may be missing from ListTopics, or another
// migrate may have won the race).
func createTopic(admin sarama.ClusterAdmin, s Spec) (bool, error) {
	entries := make(map[string]*string, len(s.Config))
	for k, v := range s.Config {
		entries[k] = &v
	}
	err := admin.CreateTopic(s.Name, &sarama.TopicDetail{
		NumPartitions:     s.Partitions,
		ReplicationFactor: s.ReplicationFactor,
		ConfigEntries:     entries,
	}, false)
	if errors.Is(err, sarama.ErrTopicAlreadyExists) {
		meta, derr := admin.DescribeTopics([]string{s.Name})
		if derr != nil || len(meta) != 1 || !errors.Is(meta[0].Err, sarama.ErrNoError) {
			return false, fmt.Errorf("topics: topic %s exists but cannot be described: %v", s.Name, derr)
		}
		detail := sarama.TopicDetail{NumPartitions: int32(len(meta[0].Partitions))}
		if len(meta[0].Partitions) > 0 {
			detail.ReplicationFactor = int16(len(meta[0].Partitions[0].Replicas))
		}
		return false, checkTopic(admin, s, detail)
	}
	if err != nil {
		return false, fmt.Errorf("topics: create topic %s: %w", s.Name, err)
	}
	return true, nil
}

func checkTopic(admin sarama.ClusterAdmin, s Spec, d sarama.TopicDetail) error {
	var diffs []string
	if d.NumPartitions != s.Partitions {
		diffs = append(diffs, fmt.Sprintf("has %d partitions, want %d", d.NumPartitions, s.Partitions))
	}
	if d.ReplicationFactor != s.ReplicationFactor {
		diffs = append(diffs, fmt.Sprintf("has replication factor %d, want %d", d.ReplicationFactor, s.ReplicationFactor))
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: s.Name, ConfigNames: checkedConfigs,
	})
	if err != nil {
		return fmt.Errorf("topics: describe topic %s: %w", s.Name, err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name] = e.Value
	}
	for _, k := range checkedConfigs {
		if want, ok := s.Config[k]; ok && got[k] != want {
			diffs = append(diffs, fmt.Sprintf("has %s=%s, want %s", k, got[k], want))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("topics: topic %s %v: %w", s.Name, diffs, ErrTopicMismatch)
}

// waitVisible waits until every broker's metadata shows every topic, so
// that a process started right after migrate finds them whichever broker it
// asks: in a cluster, brokers learn of a new topic one after another.
func waitVisible(ctx context.Context, admin Admin, names []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing, err := invisible(admin, names)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("topics: created topics not visible in metadata after 30s: %w", err)
			}
			return fmt.Errorf("topics: created topics not visible in metadata after 30s: %v", missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// invisible returns "broker: topic" for each topic of names that a live
// broker's metadata does not show yet (with its partitions).
func invisible(admin Admin, names []string) ([]string, error) {
	brokers, _, err := admin.DescribeCluster()
	if err != nil {
		return nil, err
	}
	conf := admin.SaramaConfig()
	var missing []string
	for _, b := range brokers {
		if err := b.Open(conf); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
			return nil, fmt.Errorf("broker %s: %w", b.Addr(), err)
		}
		meta, err := b.GetMetadata(sarama.NewMetadataRequest(conf.Version, names))
		_ = b.Close()
		if err != nil {
			return nil, fmt.Errorf("broker %s: %w", b.Addr(), err)
		}
		seen := map[string]bool{}
		for _, m := range meta.Topics {
			seen[m.Name] = errors.Is(m.Err, sarama.ErrNoError) && len(m.Partitions) > 0
		}
		for _, n := range names {
			if !seen[n] {
				missing = append(missing, b.Addr()+": "+n)
			}
		}
	}
	return missing, nil
}
