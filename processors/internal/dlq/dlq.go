// Package dlq describes a dead-lettered record: every group sends what it
// cannot decode, validate or store to epro-dlq with the original key and
// bytes, and these headers saying why and where it came from.
package dlq

import (
	"strconv"
	"time"

	"github.com/lovoo/goka"
)

// Header names on epro-dlq records.
const (
	HeaderReason    = "dlq.reason"
	HeaderClass     = "dlq.class"
	HeaderTopic     = "dlq.source.topic"
	HeaderPartition = "dlq.source.partition"
	HeaderOffset    = "dlq.source.offset"
	HeaderGroup     = "dlq.group"
	HeaderAt        = "dlq.at"
)

// Classes of failure, for metrics and analytics.
const (
	ClassDecode   = "decode"   // not JSON, too large, wrong wire version
	ClassValidate = "validate" // decoded, but a field is wrong
	ClassRejected = "rejected" // valid, but refused (e.g. a stale fencing token)
	ClassStore    = "store"    // the warehouse refused the row
	ClassState    = "state"    // the subject's table value cannot be decoded
	ClassBound    = "bound"    // applying it would take the subject's state over its bounds
	ClassConflict = "conflict" // its message_id was applied with another content
)

// MaxReasonLen bounds the reason header; reasons never quote patients' answers.
const MaxReasonLen = 1000

// Headers returns the headers of a record dead-lettered by group from
// topic/partition/offset.
func Headers(class, reason, group, topic string, partition int32, offset int64, at time.Time) goka.Headers {
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	return goka.Headers{
		HeaderReason:    []byte(reason),
		HeaderClass:     []byte(class),
		HeaderGroup:     []byte(group),
		HeaderTopic:     []byte(topic),
		HeaderPartition: []byte(strconv.Itoa(int(partition))),
		HeaderOffset:    []byte(strconv.FormatInt(offset, 10)),
		HeaderAt:        []byte(at.UTC().Format(time.RFC3339Nano)),
	}
}

// FromContext returns the headers for the record a goka callback is handling.
func FromContext(ctx goka.Context, class, reason string) goka.Headers {
	return Headers(class, reason, string(ctx.Group()), string(ctx.Topic()), ctx.Partition(), ctx.Offset(), time.Now())
}

// Send dead-letters the record a goka callback is handling: its key and raw
// bytes go to topic (the group's epro-dlq) with the headers of FromContext.
// Reasons must not quote patients' answers.
func Send(ctx goka.Context, topic string, raw []byte, class string, reason error) {
	ctx.Emit(goka.Stream(topic), ctx.Key(), raw, goka.WithCtxEmitHeaders(FromContext(ctx, class, reason.Error())))
}
