// Package orderedcommit makes a sarama consumer group commit each partition's
// offsets in order.
//
// goka marks a record consumed as soon as that record's own writes are
// acknowledged, and sarama's MarkOffset only moves forward. A record whose
// writes finish early (or that writes nothing, like a duplicate) therefore
// commits past an earlier record whose table write or alert is still in
// flight; a crash at that moment loses the earlier record's effects, because
// the restart resumes after it. Wrapping the group with Wrap makes a mark
// take effect only once every earlier record delivered from that partition
// has been marked too.
package orderedcommit

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
)

// Wrap returns g with in-order commits.
func Wrap(g sarama.ConsumerGroup) sarama.ConsumerGroup { return group{g} }

type group struct{ sarama.ConsumerGroup }

func (g group) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return g.ConsumerGroup.Consume(ctx, topics, &handler{inner: h})
}

// handler wraps the session and the claims a generation hands to inner.
type handler struct {
	inner sarama.ConsumerGroupHandler
	sess  *session
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.sess = &session{ConsumerGroupSession: s, partitions: map[topicPartition]*tracker{}}
	return h.inner.Setup(h.sess)
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return h.inner.Cleanup(h.sess) }

func (h *handler) ConsumeClaim(_ sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	t := h.sess.tracker(c.Topic(), c.Partition())
	out := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for m := range c.Messages() {
			t.delivered(m.Offset)
			select {
			case out <- m:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	return h.inner.ConsumeClaim(h.sess, claim{ConsumerGroupClaim: c, messages: out})
}

type claim struct {
	sarama.ConsumerGroupClaim
	messages chan *sarama.ConsumerMessage
}

func (c claim) Messages() <-chan *sarama.ConsumerMessage { return c.messages }

type topicPartition struct {
	topic     string
	partition int32
}

// session turns marks into in-order commits.
type session struct {
	sarama.ConsumerGroupSession
	mu         sync.Mutex
	partitions map[topicPartition]*tracker
}

func (s *session) tracker(topic string, partition int32) *tracker {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := topicPartition{topic, partition}
	t, ok := s.partitions[k]
	if !ok {
		t = &tracker{done: map[int64]bool{}}
		s.partitions[k] = t
	}
	return t
}

// MarkOffset marks offset-1 consumed; the session's offset moves to the end
// of the longest run of consumed records from the first one not committed.
func (s *session) MarkOffset(topic string, partition int32, offset int64, metadata string) {
	if next, ok := s.tracker(topic, partition).consumed(offset - 1); ok {
		s.ConsumerGroupSession.MarkOffset(topic, partition, next, metadata)
	}
}

func (s *session) MarkMessage(m *sarama.ConsumerMessage, metadata string) {
	s.MarkOffset(m.Topic, m.Partition, m.Offset+1, metadata)
}

// tracker holds a partition's delivered records that are not committed.
type tracker struct {
	mu      sync.Mutex
	pending []int64 // delivered, in order, not yet committed
	done    map[int64]bool
}

func (t *tracker) delivered(offset int64) {
	t.mu.Lock()
	t.pending = append(t.pending, offset)
	t.mu.Unlock()
}

// consumed records offset and returns the next offset to commit, if the
// committed run grew.
func (t *tracker) consumed(offset int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[offset] = true
	n := 0
	for n < len(t.pending) && t.done[t.pending[n]] {
		delete(t.done, t.pending[n])
		n++
	}
	if n == 0 {
		return 0, false
	}
	next := t.pending[n-1] + 1
	t.pending = append(t.pending[:0], t.pending[n:]...)
	return next, true
}
