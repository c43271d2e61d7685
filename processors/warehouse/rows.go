package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/clickhouse/chsink"
	"github.com/eprostream/eprostream/processors/internal/dlq"
)

// The destination tables (internal/clickhouse/schema/migrations/*.sql).
var (
	Submissions = &chsink.Table{
		Name: "submissions",
		Columns: []string{"message_id", "submission_key", "study_id", "site_id", "subject_id", "instrument", "instrument_version",
			"source", "format", "submitted_at", "offset_s", "received_at", "item_codes", "item_values", "item_units",
			"text_item_codes", "score_codes", "score_values", "extra", "kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset"},
		TopicColumn: "kafka_topic", TopicIDColumn: "kafka_topic_id", PartitionColumn: "kafka_partition", OffsetColumn: "kafka_offset",
		IDTable: "submission_keys", IDColumn: "submission_key",
	}
	Alerts = &chsink.Table{
		Name: "alerts",
		Columns: []string{"alert_id", "rule_id", "rule_version", "severity", "study_id", "site_id", "subject_id",
			"message_id", "submitted_at", "raised_at", "evidence_item", "evidence_values", "evidence_unit",
			"evidence_baseline", "evidence_threshold", "evidence_detail", "kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset"},
		TopicColumn: "kafka_topic", TopicIDColumn: "kafka_topic_id", PartitionColumn: "kafka_partition", OffsetColumn: "kafka_offset",
		IDTable: "alert_ids", IDColumn: "alert_id",
	}
	Commands = &chsink.Table{
		Name: "operator_commands",
		Columns: []string{"command_id", "kind", "study_id", "subject_id", "alert_id", "fence", "plan", "by_key", "at",
			"kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset"},
		TopicColumn: "kafka_topic", TopicIDColumn: "kafka_topic_id", PartitionColumn: "kafka_partition", OffsetColumn: "kafka_offset",
		IDTable: "command_ids", IDColumn: "command_id",
	}
	Enrolments = &chsink.Table{
		Name: "enrolments",
		Columns: []string{"enrolment_id", "subject_id", "study_id", "site_id", "status", "enrolled_at", "ended_at",
			"revision", "by_key", "at", "kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset"},
		TopicColumn: "kafka_topic", TopicIDColumn: "kafka_topic_id", PartitionColumn: "kafka_partition", OffsetColumn: "kafka_offset",
		IDTable: "enrolment_ids", IDColumn: "enrolment_id",
	}
	// AuditEvents is the audit trail: epro-audit's events, and the
	// enrolment revisions, acknowledgements and questionnaire puts, which
	// are their own audit records.
	AuditEvents = &chsink.Table{
		Name: "audit_events",
		Columns: []string{"audit_id", "action", "actor", "at", "study_id", "subject_id", "target", "before", "after",
			"kafka_topic", "kafka_topic_id", "kafka_partition", "kafka_offset"},
		TopicColumn: "kafka_topic", TopicIDColumn: "kafka_topic_id", PartitionColumn: "kafka_partition", OffsetColumn: "kafka_offset",
		IDTable: "audit_ids", IDColumn: "audit_id",
	}
	DLQEvents = &chsink.Table{
		Name: "dlq_events",
		Columns: []string{"dlq_topic", "dlq_topic_id", "dlq_partition", "dlq_offset", "dead_letter_id", "original_key", "class", "reason",
			"source_group", "source_topic", "source_partition", "source_offset", "dead_at", "size_bytes"},
		TopicColumn: "dlq_topic", TopicIDColumn: "dlq_topic_id", PartitionColumn: "dlq_partition", OffsetColumn: "dlq_offset",
		IDTable: "dlq_ids", IDColumn: "dead_letter_id",
	}
)

// ClickHouse's DateTime holds 1970-01-01 00:00:00 to 2105-12-31 (UTC).
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

// errOutOfRange marks a value ClickHouse cannot store: the row is dead-lettered.
var errOutOfRange = errors.New("warehouse: value outside what ClickHouse stores")

func checkTime(field string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("%w: %s %s is outside 1970-01-01..2105-12-31", errOutOfRange, field, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// SubmissionRow is the submissions row of c read at topic/partition/offset;
// an error wraps a value ClickHouse cannot store.
func SubmissionRow(c codecs.CleanSubmission, src Source) (chsink.Row, error) {
	if err := errors.Join(checkTime("submitted_at", c.SubmittedAt), checkTime("received_at", c.ReceivedAt)); err != nil {
		return chsink.Row{}, err
	}
	var codes, units, texts, scoreCodes []string
	var values, scoreValues []float64
	for _, it := range c.Items {
		if it.Num == nil {
			texts = append(texts, it.Code) // which item held text, never the text
			continue
		}
		codes, values, units = append(codes, it.Code), append(values, *it.Num), append(units, it.Unit)
	}
	for k, v := range c.Scores {
		scoreCodes, scoreValues = append(scoreCodes, k), append(scoreValues, v)
	}
	extra := "{}"
	if len(c.Extra) > 0 {
		if b, err := json.Marshal(c.Extra); err == nil {
			extra = string(b)
		}
	}
	key := SubmissionKey(c.StudyID, c.MessageID)
	return src.row(key, c.SubjectID,
		c.MessageID, key, c.StudyID, c.SiteID, c.SubjectID, c.Instrument, c.InstrumentVersion, c.Source, c.Format,
		c.SubmittedAt.UTC(), int32(c.OffsetSeconds), c.ReceivedAt.UTC(), nonNil(codes), nonNilF(values), nonNil(units),
		nonNil(texts), nonNil(scoreCodes), nonNilF(scoreValues), extra), nil
}

// Source is where a row's record was read: its topic (name and Kafka topic
// ID), partition and offset; every table stores it with the row, and the
// sink's offset guard reads it back.
type Source struct {
	Topic     string
	TopicID   string // "" when unknown (the guard then matches rows without an ID)
	Partition int32
	Offset    int64
}

// row is the row of values read at src, with id and the record's key; the
// source columns (topic, topic ID, partition, offset) follow values.
func (src Source) row(id, key string, values ...any) chsink.Row {
	values = append(values, src.Topic, src.TopicID, uint16(src.Partition), uint64(src.Offset))
	return chsink.Row{Topic: src.Topic, TopicID: src.TopicID, Partition: src.Partition, Offset: src.Offset,
		ID: id, Key: key, Values: values}
}

// SubmissionKey is a submission's identity: its message_id within its
// study (the id scope of the gateway, the subject group and the warehouse).
func SubmissionKey(study, messageID string) string { return study + "/" + messageID }

// AlertRow is the alerts row of a read at topic/partition/offset.
func AlertRow(a codecs.Alert, src Source) (chsink.Row, error) {
	if err := errors.Join(checkTime("submitted_at", a.SubmittedAt), checkTime("raised_at", a.RaisedAt)); err != nil {
		return chsink.Row{}, err
	}
	if codecs.SeverityRank(a.Severity) == 0 {
		return chsink.Row{}, fmt.Errorf("%w: severity %q", errOutOfRange, a.Severity)
	}
	e := a.Evidence
	return src.row(a.AlertID, a.SubjectID,
		a.AlertID, a.RuleID, uint32(a.RuleVersion), a.Severity, a.StudyID, a.SiteID, a.SubjectID, a.MessageID,
		a.SubmittedAt.UTC(), a.RaisedAt.UTC(), e.Item, nonNilF(e.Values), e.Unit, e.Baseline, e.Threshold, e.Detail), nil
}

// CommandRow is the operator_commands row of c; ok is false for commands
// that are not an operator's (the scheduler's check_schedule).
func CommandRow(c codecs.Command, src Source) (row chsink.Row, ok bool, err error) {
	if c.Kind != codecs.CommandPlanAdjusted && c.Kind != codecs.CommandAlertAcknowledged {
		return chsink.Row{}, false, nil
	}
	if err := checkTime("at", c.At); err != nil {
		return chsink.Row{}, true, err
	}
	return src.row(c.CommandID, c.SubjectID,
		c.CommandID, c.Kind, c.StudyID, c.SubjectID, c.AlertID, c.Fence, string(c.Plan), c.By, c.At.UTC()), true, nil
}

// EnrolmentRow is the enrolments row of e read at topic/partition/offset.
func EnrolmentRow(e codecs.Enrolment, src Source) (chsink.Row, error) {
	errs := []error{checkTime("enrolled_at", e.EnrolledAt), checkTime("at", e.At)}
	var ended *time.Time
	if e.EndedAt != nil {
		errs = append(errs, checkTime("ended_at", *e.EndedAt))
		t := e.EndedAt.UTC()
		ended = &t
	}
	if err := errors.Join(errs...); err != nil {
		return chsink.Row{}, err
	}
	id := e.SubjectID + "#" + strconv.Itoa(e.Revision)
	return src.row(id, e.SubjectID,
		id, e.SubjectID, e.StudyID, e.SiteID, e.Status, e.EnrolledAt.UTC(), ended, uint32(e.Revision), e.By, e.At.UTC()), nil
}

func dlqRow(ctx goka.Context, src Source, raw []byte) chsink.Row {
	h := ctx.Headers()
	at, err := time.Parse(time.RFC3339Nano, string(h[dlq.HeaderAt]))
	if err != nil || checkTime("dlq.at", at) != nil {
		at = ctx.Timestamp()
	}
	srcPartition, _ := strconv.ParseInt(string(h[dlq.HeaderPartition]), 10, 32)
	srcOffset, _ := strconv.ParseInt(string(h[dlq.HeaderOffset]), 10, 64)
	class := string(h[dlq.HeaderClass])
	if class == "" {
		class = "unknown"
	}
	id := DeadLetterID(string(ctx.Topic()), ctx.Partition(), ctx.Offset(), h)
	return chsink.Row{Topic: src.Topic, TopicID: src.TopicID, Partition: src.Partition, Offset: src.Offset, Key: ctx.Key(), ID: id, Values: []any{
		src.Topic, src.TopicID, uint16(src.Partition), uint64(src.Offset), id, ctx.Key(), class, string(h[dlq.HeaderReason]),
		string(h[dlq.HeaderGroup]), string(h[dlq.HeaderTopic]), int32(srcPartition), srcOffset, at.UTC(), uint32(len(raw)),
	}}
}

// DeadLetterID identifies a dead letter by its source record (group,
// topic, partition, offset), so the same record dead-lettered twice (its
// group restarted before committing) is one dead letter. A record on the
// DLQ without those headers is identified by its own place there.
func DeadLetterID(dlqTopic string, dlqPartition int32, dlqOffset int64, h goka.Headers) string {
	group, topic := string(h[dlq.HeaderGroup]), string(h[dlq.HeaderTopic])
	partition, perr := strconv.ParseInt(string(h[dlq.HeaderPartition]), 10, 32)
	offset, oerr := strconv.ParseInt(string(h[dlq.HeaderOffset]), 10, 64)
	if group == "" || topic == "" || perr != nil || oerr != nil {
		return "dlq/" + dlqTopic + "/" + strconv.Itoa(int(dlqPartition)) + "/" + strconv.FormatInt(dlqOffset, 10)
	}
	return group + "/" + topic + "/" + strconv.FormatInt(partition, 10) + "/" + strconv.FormatInt(offset, 10)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilF(s []float64) []float64 {
	if s == nil {
		return []float64{}
	}
	return s
}

// AuditRow is the audit_events row of an epro-audit event.
func AuditRow(a codecs.AuditEvent, src Source) (chsink.Row, error) {
	if err := checkTime("at", a.At); err != nil {
		return chsink.Row{}, err
	}
	return src.row(a.AuditID, a.Target,
		a.AuditID, a.Action, a.Actor, a.At.UTC(), a.StudyID, a.SubjectID, a.Target, string(a.Before), string(a.After)), nil
}

// CommandAuditRow is the audit_events row of an acknowledgement; ok is
// false for the other commands: a plan adjustment is recorded on
// epro-audit by the subject group as it applies it (with the plan it
// replaced), and the scheduler's checks are no operator's.
func CommandAuditRow(c codecs.Command, src Source) (row chsink.Row, ok bool, err error) {
	if c.Kind != codecs.CommandAlertAcknowledged {
		return chsink.Row{}, false, nil
	}
	if err := checkTime("at", c.At); err != nil {
		return chsink.Row{}, true, err
	}
	id := "command:" + c.CommandID
	after, _ := json.Marshal(map[string]string{"alert_id": c.AlertID, "state": "acknowledged"})
	return src.row(id, c.SubjectID,
		id, "alert.acknowledge", Actor(c.By), c.At.UTC(), c.StudyID, c.SubjectID, c.AlertID, "", string(after)), true, nil
}

// EnrolmentAuditRow is the audit_events row of an enrolment revision: the
// first is "enrolment.enrol", a withdrawal or completion says so, any other
// later revision is a transfer. Before is the binding the revision
// replaced, after the revision (ids, site, status, dates: no answer).
func EnrolmentAuditRow(e codecs.Enrolment, src Source) (chsink.Row, error) {
	if err := checkTime("at", e.At); err != nil {
		return chsink.Row{}, err
	}
	action := "enrolment.transfer"
	switch {
	case e.Status == codecs.EnrolmentWithdrawn:
		action = "enrolment.withdraw"
	case e.Status == codecs.EnrolmentCompleted:
		action = "enrolment.complete"
	case e.Revision <= 1:
		action = "enrolment.enrol"
	}
	var before []byte
	if e.Previous != nil {
		before, _ = json.Marshal(e.Previous)
	}
	e.Previous = nil
	after, _ := json.Marshal(e)
	id := "enrolment:" + e.SubjectID + "#" + strconv.Itoa(e.Revision)
	return src.row(id, e.SubjectID,
		id, action, Actor(e.By), e.At.UTC(), e.StudyID, e.SubjectID, e.SubjectID, string(before), string(after)), nil
}

// QuestionnaireAuditRow is the audit_events row of a Questionnaire a study
// put: its id, url, revision and a digest of the resource as put (a form,
// not an answer). epro-questionnaires holds each put twice (keyed by id
// and by url); the warehouse lands the id-keyed one.
func QuestionnaireAuditRow(q codecs.QuestionnaireRecord, src Source) (chsink.Row, error) {
	if err := checkTime("at", q.At); err != nil {
		return chsink.Row{}, err
	}
	sum := sha256.Sum256(q.Resource)
	after, _ := json.Marshal(map[string]any{"id": q.ID, "url": q.URL, "revision": q.Revision, "sha256": hex.EncodeToString(sum[:])})
	var before []byte
	if q.Revision > 1 {
		before, _ = json.Marshal(map[string]any{"id": q.ID, "url": q.URL, "revision": q.Revision - 1})
	}
	id := "questionnaire:" + q.StudyID + "/" + q.ID + "#" + strconv.Itoa(q.Revision)
	return src.row(id, q.ID,
		id, "questionnaire.put", Actor(q.By), q.At.UTC(), q.StudyID, "", q.ID, string(before), string(after)), nil
}

// Actor is the audit trail's actor for a record's By: an API key id
// becomes "key:<id>"; "cli:<user>" and "first-report" stay as they are.
func Actor(by string) string {
	switch {
	case by == "":
		return "unknown"
	case by == "first-report", strings.HasPrefix(by, "cli:"), strings.HasPrefix(by, "key:"), strings.HasPrefix(by, "group:"):
		return by
	default:
		return "key:" + by
	}
}
