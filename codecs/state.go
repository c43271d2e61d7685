package codecs

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	json "github.com/goccy/go-json"
)

// MaxApplied bounds how many applied message ids a subject remembers (8
// bytes each): a duplicate at a new offset (a producer's retry, a record
// sent again through another path) is recognised among the subject's latest
// 1,024 records, about three years of daily diaries. Replays of the
// uncommitted tail after a crash are recognised by position instead (Pos),
// however old. The gateway also deduplicates retries for 24 h before they
// reach Kafka.
const MaxApplied = 1024

// MaxAcked bounds the acknowledged alert ids a subject keeps.
const MaxAcked = 64

// SubjectState is the value of subject-table: one subject's state as a fold
// over its clean submissions and commands. The applied-id memory lives in the
// same record as the state it protects, so one table write covers both.
type SubjectState struct {
	V         int    `json:"v"`
	StudyID   string `json:"study"`
	SiteID    string `json:"site"`
	SubjectID string `json:"subject"`
	Reports   int    `json:"n"`
	FirstAt   int64  `json:"first,omitempty"` // unix seconds of the first report
	LastAt    int64  `json:"last,omitempty"`  // unix seconds of the latest report
	// EnrolledAt (unix seconds) is set for a subject the missed-diary sweep
	// found enrolled and silent before its first report.
	EnrolledAt int64 `json:"enrolled,omitempty"`
	// Items holds each item's baseline and recent values.
	Items map[string]*ItemHistory `json:"items,omitempty"`
	// Open are the alert conditions that hold now, by condition key
	// (rule id, or rule id + "/" + item); they block re-alerting.
	Open map[string]OpenCondition `json:"open,omitempty"`
	// Applied are 64-bit hashes of the latest applied message and command
	// ids, oldest first, at most MaxApplied.
	Applied AppliedIDs `json:"applied,omitempty"`
	// Sums are 32-bit hashes of what each applied record said (BodySum; 0
	// for commands), aligned with the tail of Applied (a state written
	// before they were kept has fewer): a record whose id was applied with
	// another content is a conflicting duplicate, not a duplicate.
	Sums AppliedSums `json:"sums,omitempty"`
	// Plan is the medication plan of the last accepted adjustment and Fence
	// the fencing token that wrote it.
	Plan  json.RawMessage `json:"plan,omitempty"`
	Fence int64           `json:"fence,omitempty"`
	// PlanBefore is the plan that adjustment replaced, so its audit
	// event can be sent again, the same, after a crash.
	PlanBefore json.RawMessage `json:"plan_before,omitempty"`
	// Pos is, per input ("clean", "commands"), the topic identity and the
	// highest offset whose record changed this state. A subject's records
	// all share one partition, so a record at or below it on the same topic
	// is a replay, recognised without any window.
	Pos map[string]InputPos `json:"pos,omitempty"`
	// Acked are the alert ids a nurse acknowledged (latest MaxAcked).
	Acked []string `json:"acked,omitempty"`
	// Outbox holds the alerts raised by the latest OutboxDepth applied
	// records. The state write and the alert emit are two Kafka writes; if a
	// crash lands between them, the replayed record is found applied and its
	// alerts are sent again from here (same ids), so none is lost.
	Outbox []OutboxAlert `json:"outbox,omitempty"`
}

// OutboxDepth is how many of the latest applied records keep their alerts
// in the outbox; a crash replays far fewer records of one subject.
const OutboxDepth = 8

// OutboxAlert is an alert and the id of the record that raised it.
type OutboxAlert struct {
	From  string `json:"from"`
	Alert Alert  `json:"alert"`
}

// Raised returns the alerts that record id raised, from the outbox.
func (s *SubjectState) Raised(id string) []Alert {
	var out []Alert
	for _, o := range s.Outbox {
		if o.From == id {
			out = append(out, o.Alert)
		}
	}
	return out
}

// Remember puts the alerts record id raised in the outbox and forgets those
// of records older than the latest OutboxDepth applied ones. Call it after
// MarkApplied(id).
func (s *SubjectState) Remember(id string, alerts []Alert) {
	for _, a := range alerts {
		s.Outbox = append(s.Outbox, OutboxAlert{From: id, Alert: a})
	}
	recent := s.Applied
	if len(recent) > OutboxDepth {
		recent = recent[len(recent)-OutboxDepth:]
	}
	kept := s.Outbox[:0]
	for _, o := range s.Outbox {
		if slices.Contains(recent, idHash(o.From)) {
			kept = append(kept, o)
		}
	}
	s.Outbox = kept
}

// ItemHistory is what the rules need of one item: the baseline (the first
// reports' sum and count) and the latest values, oldest first.
type ItemHistory struct {
	BaseN   int     `json:"bn,omitempty"`
	BaseSum float64 `json:"bs,omitempty"`
	Recent  Points  `json:"r,omitempty"`
}

// Points are an item's latest values, oldest first. JSON writes them as an
// array of Point; the binary state packs them (see Points.MarshalMsg).
type Points []Point

// Point is one value at a time (unix seconds).
type Point struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// OpenCondition is an alert condition that holds.
type OpenCondition struct {
	Severity string `json:"sev"`
	Since    int64  `json:"since"`
	AlertID  string `json:"alert"`
}

func (s SubjectState) wireVersion() int { return s.V }

// AppliedIDs are 64-bit id hashes, written as one base64 string (8 bytes
// each, big-endian): a third of the size of a JSON number array, which keeps
// a subject's record small. A JSON array of numbers is read too.
type AppliedIDs []uint64

// MarshalJSON implements json.Marshaler.
func (a AppliedIDs) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawStdEncoding.EncodeToString(a.appendPacked(make([]byte, 0, 8*len(a)))))
}

// appendPacked appends the hashes to b, 8 bytes each, big-endian: the
// bytes both the JSON and the binary state hold.
func (a AppliedIDs) appendPacked(b []byte) []byte {
	for _, h := range a {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

// unpackApplied reads what appendPacked wrote; empty is nil.
func unpackApplied(b []byte) (AppliedIDs, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("applied: not a list of 8-byte hashes")
	}
	if len(b) == 0 {
		return nil, nil
	}
	out := make(AppliedIDs, len(b)/8)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *AppliedIDs) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '[' {
		return json.Unmarshal(data, (*[]uint64)(a))
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	out, perr := unpackApplied(b)
	if err != nil || perr != nil {
		return fmt.Errorf("applied: not a base64 list of 8-byte hashes")
	}
	*a = out
	return nil
}

// AppliedSums are 32-bit hashes written as one base64 string (4 bytes each).
type AppliedSums []uint32

// MarshalJSON implements json.Marshaler.
func (a AppliedSums) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawStdEncoding.EncodeToString(a.appendPacked(make([]byte, 0, 4*len(a)))))
}

// appendPacked appends the sums to b, 4 bytes each, big-endian.
func (a AppliedSums) appendPacked(b []byte) []byte {
	for _, h := range a {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	return b
}

// unpackSums reads what appendPacked wrote; empty is nil.
func unpackSums(b []byte) (AppliedSums, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("sums: not a list of 4-byte hashes")
	}
	if len(b) == 0 {
		return nil, nil
	}
	out := make(AppliedSums, len(b)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return out, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *AppliedSums) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	out, perr := unpackSums(b)
	if err != nil || perr != nil {
		return fmt.Errorf("sums: not a base64 list of 4-byte hashes")
	}
	*a = out
	return nil
}

// InputPos is a place on an input topic: the topic's identity (its Kafka
// topic ID when known, so a recreated topic is a new input) and an offset.
// A partition is part of it: after a repartition a subject's records may
// move to a partition whose offsets are lower.
type InputPos struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
}

// Replayed reports whether the record at pos of input was applied to this
// state before (an at-least-once replay).
func (s *SubjectState) Replayed(input string, pos InputPos) bool {
	last, ok := s.Pos[input]
	return ok && last.Topic == pos.Topic && last.Partition == pos.Partition && pos.Offset <= last.Offset
}

// Advance records that the record at pos of input changed this state.
func (s *SubjectState) Advance(input string, pos InputPos) {
	if s.Pos == nil {
		s.Pos = make(map[string]InputPos, 2)
	}
	s.Pos[input] = pos
}

// idHash is the key of the applied-id memory.
func idHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// HasApplied reports whether id (a message or command id) was applied.
func (s *SubjectState) HasApplied(id string) bool {
	return slices.Contains(s.Applied, idHash(id))
}

// MarkApplied remembers id, forgetting the oldest beyond MaxApplied.
func (s *SubjectState) MarkApplied(id string) { s.MarkAppliedSum(id, 0) }

// MarkAppliedSum remembers id and the BodySum of what it said.
func (s *SubjectState) MarkAppliedSum(id string, sum uint32) {
	s.Applied = append(s.Applied, idHash(id))
	s.Sums = append(s.Sums, sum)
	if over := len(s.Applied) - MaxApplied; over > 0 {
		s.Applied = append(s.Applied[:0], s.Applied[over:]...)
	}
	if over := len(s.Sums) - len(s.Applied); over > 0 {
		s.Sums = append(s.Sums[:0], s.Sums[over:]...)
	}
}

// Conflicts reports whether id was applied with a content other than sum
// (both known: neither 0).
func (s *SubjectState) Conflicts(id string, sum uint32) bool {
	return s.conflicts(id, func() uint32 { return sum })
}

// ConflictsWith reports whether c's message_id was applied with another
// content; it hashes c only when the id is known (the rare case).
func (s *SubjectState) ConflictsWith(c CleanSubmission) bool {
	return s.conflicts(c.MessageID, func() uint32 { return BodySum(c) })
}

func (s *SubjectState) conflicts(id string, sum func() uint32) bool {
	i := slices.Index(s.Applied, idHash(id))
	if i < 0 {
		return false
	}
	j := i - (len(s.Applied) - len(s.Sums))
	if j < 0 || s.Sums[j] == 0 {
		return false
	}
	got := sum()
	return got != 0 && s.Sums[j] != got
}

// BodySum hashes what a submission says: study, site, instrument and its
// version, when it was submitted and every item. Not where or when it
// arrived (received_at, source, format), so the same report sent again,
// through FHIR or the native envelope, has the same sum. Never 0.
func BodySum(c CleanSubmission) uint32 {
	h := fnv.New32a()
	var b [8]byte
	put := func(s string) { _, _ = h.Write([]byte(s)); _, _ = h.Write([]byte{0}) }
	put(c.StudyID)
	put(c.SiteID)
	put(c.Instrument)
	put(c.InstrumentVersion)
	binary.BigEndian.PutUint64(b[:], uint64(c.SubmittedAt.UnixNano()))
	_, _ = h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(int64(c.OffsetSeconds)))
	_, _ = h.Write(b[:])
	for _, it := range c.Items {
		put(it.Code)
		if it.Num != nil {
			binary.BigEndian.PutUint64(b[:], math.Float64bits(*it.Num))
			_, _ = h.Write(b[:])
		}
		put(it.Text)
		put(it.Unit)
	}
	if sum := h.Sum32(); sum != 0 {
		return sum
	}
	return 1
}

// Clone returns a deep copy, so pure functions can return a new state.
func (s SubjectState) Clone() SubjectState {
	c := s
	c.Items = make(map[string]*ItemHistory, len(s.Items))
	for k, v := range s.Items {
		h := *v
		h.Recent = slices.Clone(v.Recent)
		c.Items[k] = &h
	}
	c.Open = make(map[string]OpenCondition, len(s.Open))
	for k, v := range s.Open {
		c.Open[k] = v
	}
	c.Applied = slices.Clone(s.Applied)
	c.Sums = slices.Clone(s.Sums)
	if s.Pos != nil {
		c.Pos = make(map[string]InputPos, len(s.Pos))
		for k, v := range s.Pos {
			c.Pos[k] = v
		}
	}
	c.Acked = slices.Clone(s.Acked)
	c.Plan = slices.Clone(s.Plan)
	c.PlanBefore = slices.Clone(s.PlanBefore)
	c.Outbox = slices.Clone(s.Outbox)
	return c
}

// Unix returns a unix-seconds field as a UTC time.
func Unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
