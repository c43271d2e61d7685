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
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/logging"
)

// Hub follows epro-alerts and fans every alert out to the live
// subscribers of this process, keeping the latest ones in a ring so a
// subscriber that reconnects with the id of the last alert it saw
// (SSE's Last-Event-ID) gets everything after it and misses nothing.
//
// With HubConfig.Commands set it also follows epro-commands and sends an
// "ack" event for each acknowledgement, so every open dashboard sees an
// alert change state when a nurse acknowledged it anywhere.
//
// An alert's event id is "<partition>-<offset>" on epro-alerts, an
// acknowledgement's "c<partition>-<offset>" on epro-commands. On start
// the ring is filled with the latest Backfill records of each partition, so
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
	// Indexes of the ring, kept as it grows and sheds: alert id → the
	// latest copy of the alert and its sequence number; subject id → its
	// alert events' ids, oldest first (repeats included); alert id → the
	// latest acknowledgement.
	alerts    map[string]ringAlert
	bySubject map[string][]string
	acked     map[string]ringAck
	subs      map[*Subscription]struct{}
	ready     chan struct{}
}

type ringAlert struct {
	alert codecs.Alert
	seq   uint64
}

type ringAck struct {
	at  time.Time
	seq uint64
}

// Event is one alert, or one acknowledgement, as the stream sends it.
type Event struct {
	ID string // "<partition>-<offset>"; "c<partition>-<offset>" for an acknowledgement
	// Alert is the alert; for an acknowledgement, the acknowledged alert
	// as far as the ring knows it (at least its study and subject), so the
	// subscribers' filters apply to both alike.
	Alert codecs.Alert
	Ack   *Ack   // set for an acknowledgement
	Data  []byte // the event's JSON
}

// Ack is an "ack" event: a nurse acknowledged an alert.
type Ack struct {
	AlertID        string    `json:"alert_id"`
	StudyID        string    `json:"study_id"`
	SiteID         string    `json:"site_id,omitempty"`
	SubjectID      string    `json:"subject_id"`
	AcknowledgedAt time.Time `json:"acknowledged_at"`
	By             string    `json:"by,omitempty"` // the API key's id
}

// Name is the event's SSE name: "alert" or "ack".
func (ev Event) Name() string {
	if ev.Ack != nil {
		return "ack"
	}
	return "alert"
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
	Topic string // epro-alerts, with its prefix; required
	// Commands is epro-commands with its prefix: its acknowledgements become
	// "ack" events (empty: alerts only).
	Commands string
	RingSize int   // events kept for resumption; default 50,000
	Backfill int64 // records per partition read at start; default 5,000
	Buffer   int   // events a subscriber may be behind before it is dropped; default 1,024
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
		index: map[string]uint64{}, alerts: map[string]ringAlert{}, bySubject: map[string][]string{}, acked: map[string]ringAck{}, subs: map[*Subscription]struct{}{}, ready: make(chan struct{})}, nil
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
	type partition struct {
		topic string
		p     int32
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	pending := 0 // partitions still reading their backfill
	ends := map[partition]int64{}
	for _, topic := range []string{h.topic, h.cfg.Commands} {
		if topic == "" {
			continue
		}
		parts, err := h.client.Partitions(topic)
		if err != nil {
			return fmt.Errorf("views: alert stream: %s: %w", topic, err)
		}
		for _, p := range parts {
			pc, end, err := h.consume(consumer, topic, p)
			if err != nil {
				return err
			}
			defer pc.Close()
			if end > 0 {
				ends[partition{topic, p}] = end
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
			if end, ok := ends[partition{m.Topic, m.Partition}]; ok && m.Offset >= end-1 {
				delete(ends, partition{m.Topic, m.Partition})
				if pending--; pending == 0 {
					close(h.ready)
				}
			}
		}
	}
}

// consume starts partition p of topic Backfill records before its end;
// end is the partition's high-water mark at start.
func (h *Hub) consume(consumer sarama.Consumer, topic string, p int32) (sarama.PartitionConsumer, int64, error) {
	oldest, err := h.client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: %w", err)
	}
	end, err := h.client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: %w", err)
	}
	pc, err := consumer.ConsumePartition(topic, p, max(oldest, end-h.cfg.Backfill))
	if err != nil {
		return nil, 0, fmt.Errorf("views: alert stream: %s partition %d: %w", topic, p, err)
	}
	if end <= oldest {
		end = 0 // nothing to backfill
	}
	return pc, end, nil
}

func (h *Hub) publish(m *sarama.ConsumerMessage) {
	id := strconv.Itoa(int(m.Partition)) + "-" + strconv.FormatInt(m.Offset, 10)
	if m.Topic != h.topic {
		h.publishAck(m, "c"+id)
		return
	}
	var a codecs.Alert
	if err := json.Unmarshal(m.Value, &a); err != nil || a.AlertID == "" {
		h.log.Debug("alert stream: undecodable record skipped", "partition", m.Partition, "offset", m.Offset)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alerts[a.AlertID] = ringAlert{alert: a, seq: h.first + uint64(len(h.ring))}
	h.bySubject[a.SubjectID] = append(h.bySubject[a.SubjectID], a.AlertID)
	h.add(Event{ID: id, Alert: a, Data: m.Value})
}

// publishAck turns an acknowledgement on epro-commands into an "ack"
// event; other commands are not shown.
func (h *Hub) publishAck(m *sarama.ConsumerMessage, id string) {
	var c codecs.Command
	if err := json.Unmarshal(m.Value, &c); err != nil || c.Kind != codecs.CommandAlertAcknowledged || c.AlertID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.alerts[c.AlertID]
	a := r.alert
	if !ok || a.StudyID != c.StudyID || a.SubjectID != c.SubjectID {
		a = codecs.Alert{AlertID: c.AlertID, StudyID: c.StudyID, SubjectID: c.SubjectID}
	}
	ack := &Ack{AlertID: c.AlertID, StudyID: c.StudyID, SiteID: a.SiteID, SubjectID: c.SubjectID, AcknowledgedAt: c.At.UTC(), By: c.By}
	data, _ := json.Marshal(ack)
	h.acked[c.AlertID] = ringAck{at: ack.AcknowledgedAt, seq: h.first + uint64(len(h.ring))}
	h.add(Event{ID: id, Alert: a, Ack: ack, Data: data})
}

// about is the alert ev is about, for the filters: an acknowledgement read
// before its alert (the two topics are read side by side) is matched with
// the alert once the ring has it; h.mu is held.
func (h *Hub) about(ev Event) codecs.Alert {
	if ev.Ack == nil || ev.Alert.SiteID != "" {
		return ev.Alert
	}
	if r, ok := h.alerts[ev.Ack.AlertID]; ok && r.alert.StudyID == ev.Ack.StudyID && r.alert.SubjectID == ev.Ack.SubjectID {
		return r.alert
	}
	return ev.Alert
}

// add puts ev in the ring and sends it to the subscribers whose filter it
// passes; h.mu is held.
func (h *Hub) add(ev Event) {
	h.index[ev.ID] = h.first + uint64(len(h.ring))
	h.ring = append(h.ring, ev)
	if over := len(h.ring) - h.cfg.RingSize; over > 0 {
		for i, old := range h.ring[:over] {
			seq := h.first + uint64(i)
			delete(h.index, old.ID)
			if old.Ack != nil {
				if h.acked[old.Ack.AlertID].seq == seq {
					delete(h.acked, old.Ack.AlertID)
				}
				continue
			}
			if h.alerts[old.Alert.AlertID].seq == seq {
				delete(h.alerts, old.Alert.AlertID)
			}
			if ids := h.bySubject[old.Alert.SubjectID]; len(ids) > 1 {
				h.bySubject[old.Alert.SubjectID] = ids[1:]
			} else {
				delete(h.bySubject, old.Alert.SubjectID)
			}
		}
		h.ring = append(h.ring[:0:0], h.ring[over:]...)
		h.first += uint64(over)
	}
	a := h.about(ev)
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
		// The latest recent alerts, each once and oldest first, then the
		// acknowledgements of those (an acknowledgement may precede its
		// alert in the ring).
		var backlog []Event
		shown := map[string]bool{}
		for i := len(h.ring) - 1; i >= 0 && len(shown) < recent; i-- {
			if ev := h.ring[i]; ev.Ack == nil && f.Match(ev.Alert) && !shown[ev.Alert.AlertID] {
				shown[ev.Alert.AlertID] = true
				backlog = append(backlog, ev)
			}
		}
		slices.Reverse(backlog)
		for _, ev := range backlog[:len(backlog):len(backlog)] {
			if k, ok := h.acked[ev.Alert.AlertID]; ok {
				backlog = append(backlog, h.ring[k.seq-h.first])
			}
		}
		return s, backlog
	}
	from := 0
	if seq, ok := h.index[lastID]; ok {
		from = int(seq-h.first) + 1
	}
	var backlog []Event
	for _, ev := range h.ring[from:] {
		if f.Match(h.about(ev)) {
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

// SubjectAlert is one of a subject's alerts, with its acknowledgement.
type SubjectAlert struct {
	codecs.Alert
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
}

// maxSubjectAlerts bounds SubjectAlerts' answer.
const maxSubjectAlerts = 200

// SubjectAlerts returns the subject's alerts among the ring's events (the
// latest RingSize), newest first, each once, at most 200.
func (h *Hub) SubjectAlerts(subject string) []SubjectAlert {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := h.bySubject[subject]
	seen := make(map[string]bool, len(ids))
	var out []SubjectAlert
	for i := len(ids) - 1; i >= 0 && len(out) < maxSubjectAlerts; i-- {
		r, ok := h.alerts[ids[i]]
		if seen[ids[i]] || !ok {
			continue
		}
		seen[ids[i]] = true
		sa := SubjectAlert{Alert: r.alert}
		if k, ok := h.acked[ids[i]]; ok {
			at := k.at
			sa.AcknowledgedAt = &at
		}
		out = append(out, sa)
	}
	return out
}
