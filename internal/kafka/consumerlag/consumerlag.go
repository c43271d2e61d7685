// Package consumerlag measures how far a consumer group is behind: the
// records of its topics it has not committed yet.
package consumerlag

import (
	"fmt"

	"github.com/IBM/sarama"
)

// Of returns the uncommitted records of group over topics. A partition the
// group never committed counts from the partition's oldest offset.
func Of(client sarama.Client, admin sarama.ClusterAdmin, group string, topics ...string) (int64, error) {
	parts := map[string][]int32{}
	for _, tp := range topics {
		ps, err := client.Partitions(tp)
		if err != nil {
			return 0, fmt.Errorf("consumerlag: %s: %w", tp, err)
		}
		parts[tp] = ps
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, parts)
	if err != nil {
		return 0, fmt.Errorf("consumerlag: %s: %w", group, err)
	}
	var lag int64
	for tp, ps := range parts {
		for _, p := range ps {
			hwm, err := client.GetOffset(tp, p, sarama.OffsetNewest)
			if err != nil {
				return 0, fmt.Errorf("consumerlag: %s/%d: %w", tp, p, err)
			}
			committed, err := client.GetOffset(tp, p, sarama.OffsetOldest)
			if err != nil {
				return 0, fmt.Errorf("consumerlag: %s/%d: %w", tp, p, err)
			}
			if b := offsets.GetBlock(tp, p); b != nil && b.Offset >= 0 {
				committed = b.Offset
			}
			lag += hwm - committed
		}
	}
	return lag, nil
}

// Written returns the number of records ever written to topic (the sum of
// its partitions' high-water marks).
func Written(client sarama.Client, topic string) (int64, error) {
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("consumerlag: %s: %w", topic, err)
	}
	var n int64
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("consumerlag: %s/%d: %w", topic, p, err)
		}
		n += hwm
	}
	return n, nil
}
