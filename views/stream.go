package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/logging"
)

// Hub follows epro-alerts and fans every alert out to the live
// subscribers of this process, keeping the latest ones in a ring so a
// subscriber that reconnects with the id of the last alert it saw
// (SSE's Last-Event-ID) gets everything after it and misses nothing.
//
// An alert's event id is "<partition>-<offset>" on epro-alerts. On start
// the ring is filled with the latest Backfill alerts of each partition, so
// resumption also works across a restart of the process. An id no longer
// in the ring (older than RingSize alerts) is answered with the whole ring:
// at-least-once, and subscribers drop repeats by alert_id. A subscriber
// that falls more than its buffer behind is disconnected; it reconnects
// with its last id and catches up from the ring.
type Hub struct {
	client sarama.Client
	topic  string
	log    *slog.Logger
	cfg    HubConfig

	mu    sync.Mutex
	ring  []Event
	first uint64            // sequence number of ring[0]
	index map[string]uint64 // event id → sequence number
	subs  map[*Subscription]struct{}
	ready chan struct{}
}

// Event is one alert as the stream sends it.
type Event struct {
	ID    string // "<partition>-<offset>"
	Alert codecs.Alert
	Data  []byte // the alert's JSON
}

// Filter selects alerts; empty fields match everything.
type Filter struct {
	Study, Site string
	MinSeverity string // info, warning or urgent
	// Studies, when not nil, are the only studies the subscriber may read.
	Studies []string
}

// Match reports whether a passes the filter.
func (f Filter) Match(a codecs.Alert) bool {
	return (f.Study == "" || f.Study == a.StudyID) && (f.Site == "" || f.Site == a.SiteID) &&
		codecs.SeverityRank(a.Severity) >= codecs.SeverityRank(f.MinSeverity) &&
		(f.Studies == nil || slices.Contains(f.Studies, a.StudyID))
}

// Subscription is one live subscriber.
type Subscription struct {
	C      chan Event // closed when the subscriber fell behind
	filter Filter
}

// HubConfig tunes a Hub.
type HubConfig struct {
	Topic    string // epro-alerts, with its prefix; required
	RingSize int    // alerts kept for resumption; default 50,000
	Backfill int64  // alerts per partition read at start; default 5,000
	Buffer   int    // events a subscriber may be behind before it is dropped; default 1,024
}

func (c *HubConfig) setDefaults() {
	if c.RingSize <= 0 {
		c.RingSize = 50_000
	}
	if c.Backfill <= 0 {
		c.Backfill = 5_000
	}
	if c.Buffer <= 0 {
		c.Buffer = 1024
	}
}

// HubDeps are a Hub's collaborators.
type HubDeps struct {
	Client sarama.Client // required
	Log    *slog.Logger  // nil discards
}

// NewHub returns a hub of cfg.Topic read through deps.Client.
func NewHub(cfg HubConfig, deps HubDeps) (*Hub, error) {
	cfg.setDefaults()
	if cfg.Topic == "" || deps.Client == nil {
		return nil, errors.New("views: HubConfig.Topic and HubDeps.Client are required")
	}
	return &Hub{client: deps.Client, topic: cfg.Topic, log: logging.OrDiscard(deps.Log), cfg: cfg,
		index: map[string]uint64{}, subs: map[*Subscription]struct{}{}, ready: make(chan struct{})}, nil
}

// Ready is closed once the backfill is in the ring.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run follows the topic until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	consumer, err := sarama.NewConsumerFromClient(h.client)
	if err != nil {
		return fmt.Errorf("views: alert stream: %w", err)
	}
	defer consumer.Close()
	parts, err := h.client.Partitions(h.topic)
	if err != nil {
		return fmt.Errorf("views: alert stream: %s: %w", h.topic, err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	pending := 0 // partitions still reading their backfill
	ends := map[int32]int64{}
	for _, p := range parts {
		pc, end, err := h.consume(consumer, p)
		if err != nil {
			return err
		}
		defer pc.Close()
		if end > 0 {
			ends[p] = end
			pending++
		}
		go func() {
			for m := range pc.Messages() {
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if pending == 0 {
		close(h.ready)
	}
	for {
		select {
		case <-ctx.Done():
			h.closeAll()
			return nil
		case m := <-msgs:
			h.publish(m)
			if end, ok := ends[m.Partition]; ok && m.Offset >= end-1 {
				delete(ends, m.Partition)
				if pending--; pending == 0 {
					close(h.ready)
				}
			}
		}
	}
}

// consume starts partition p Backfill records before its end; end is the
// partition's high-water mark at start.
func (h *Hub) consume(consumer sarama.Consumer, p int32) (sarama.PartitionConsumer, int64, error) {
	oldest, err := h.client.GetOffset(h.topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: %w", err)
	}
	end, err := h.client.GetOffset(h.topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: %w", err)
	}
	pc, err := consumer.ConsumePartition(h.topic, p, max(oldest, end-h.cfg.Backfill))
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: partition %d: %w", p, err)
	}
	if end <= oldest {
		end = 0 // nothing to backfill
	}
	return pc, end, nil
}

func (h *Hub) publish(m *sarama.ConsumerMessage) {
	var a codecs.Alert
	if err := json.Unmarshal(m.Value, &a); err != nil || a.AlertID == "" {
		h.log.Debug("alert stream: undecodable record skipped", "partition", m.Partition, "offset", m.Offset)
		return
	}
	ev := Event{ID: strconv.Itoa(int(m.Partition)) + "-" + strconv.FormatInt(m.Offset, 10), Alert: a, Data: m.Value}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.index[ev.ID] = h.first + uint64(len(h.ring))
	h.ring = append(h.ring, ev)
	if over := len(h.ring) - h.cfg.RingSize; over > 0 {
		for _, old := range h.ring[:over] {
			delete(h.index, old.ID)
		}
		h.ring = append(h.ring[:0:0], h.ring[over:]...)
		h.first += uint64(over)
	}
	for s := range h.subs {
		if !s.filter.Match(a) {
			continue
		}
		select {
		case s.C <- ev:
		default: // fell behind: drop it; it resumes from the ring
			delete(h.subs, s)
			close(s.C)
		}
	}
}

// Subscribe registers a subscriber and returns it with the backlog it
// missed after lastID; without lastID, the latest recent alerts that match
// (0 for live alerts only).
func (h *Hub) Subscribe(lastID string, recent int, f Filter) (*Subscription, []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Subscription{C: make(chan Event, h.cfg.Buffer), filter: f}
	h.subs[s] = struct{}{}
	if lastID == "" {
		var backlog []Event
		for i := len(h.ring) - 1; i >= 0 && len(backlog) < recent; i-- {
			if f.Match(h.ring[i].Alert) {
				backlog = append(backlog, h.ring[i])
			}
		}
		slices.Reverse(backlog)
		return s, backlog
	}
	from := 0
	if seq, ok := h.index[lastID]; ok {
		from = int(seq-h.first) + 1
	}
	var backlog []Event
	for _, ev := range h.ring[from:] {
		if f.Match(ev.Alert) {
			backlog = append(backlog, ev)
		}
	}
	return s, backlog
}

// Unsubscribe removes s.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.C)
	}
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		delete(h.subs, s)
		close(s.C)
	}
}
