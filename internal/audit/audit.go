// Package audit builds the events of epro-audit: one per operator action
// that leaves no other record (API keys created and revoked, webhook
// subscriptions created and deleted, rule sets loaded, plan adjustments as
// the subject group applies them). Each event's id is
// fixed by the action, so sending it again after an error is safe: the
// warehouse stores it once in audit_events. Events describe keys and
// subscriptions without their secrets (an API key's hash included) and
// never hold a patient's answer.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/rules"
	"github.com/eprostream/eprostream/webhooks"
)

// Sender writes an event and returns once Kafka has it
// (emitters.AuditEmitter).
type Sender interface {
	Emit(ctx context.Context, e codecs.AuditEvent) error
}

// CLI is the actor of a command-line action: "cli:<operating-system user>".
func CLI() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// Key is the actor of an action made with the API key id.
func Key(id string) string { return "key:" + id }

// key is what the trail records of an API key: everything but its hash.
type key struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Studies    []string  `json:"studies"`
	Roles      []string  `json:"roles"`
	RatePerSec int       `json:"rate_per_sec,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

func describe(k apikeys.Key) json.RawMessage {
	b, _ := json.Marshal(key{ID: k.ID, Name: k.Name, Studies: k.Studies, Roles: k.Roles, RatePerSec: k.RatePerSec,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt})
	return b
}

func record(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// studyOf is the one study a key or subscription covers, or "".
func studyOf(studies []string) string {
	if len(studies) == 1 && studies[0] != apikeys.AllStudies {
		return studies[0]
	}
	return ""
}

// KeyCreated is the event of an API key's creation.
func KeyCreated(k apikeys.Key, actor string) codecs.AuditEvent {
	return codecs.AuditEvent{AuditID: codecs.AuditKeyCreate + ":" + k.ID, Action: codecs.AuditKeyCreate, Actor: actor,
		At: k.CreatedAt.UTC(), StudyID: studyOf(k.Studies), Target: k.ID, After: describe(k)}
}

// KeyRevoked is the event of an API key's revocation; k is the key after it.
func KeyRevoked(k apikeys.Key, actor string) codecs.AuditEvent {
	before := k
	before.RevokedAt = time.Time{}
	return codecs.AuditEvent{AuditID: codecs.AuditKeyRevoke + ":" + k.ID, Action: codecs.AuditKeyRevoke, Actor: actor,
		At: k.RevokedAt.UTC(), StudyID: studyOf(k.Studies), Target: k.ID, Before: describe(before), After: describe(k)}
}

// WebhookCreated is the event of a subscription's creation.
func WebhookCreated(s webhooks.Subscription, actor string) codecs.AuditEvent {
	return codecs.AuditEvent{AuditID: codecs.AuditWebhookCreate + ":" + s.ID, Action: codecs.AuditWebhookCreate, Actor: actor,
		At: s.CreatedAt.UTC(), StudyID: studyOf(s.Studies), Target: s.ID, After: record(s)}
}

// WebhookDeleted is the event of a subscription's removal at at.
func WebhookDeleted(s webhooks.Subscription, actor string, at time.Time) codecs.AuditEvent {
	return codecs.AuditEvent{AuditID: codecs.AuditWebhookDelete + ":" + s.ID, Action: codecs.AuditWebhookDelete, Actor: actor,
		At: at.UTC(), StudyID: studyOf(s.Studies), Target: s.ID, Before: record(s)}
}

// RulesLoaded is the event of group loading a rule set: one per group,
// study, version and content, however often the group starts again (its
// time is the first load's).
func RulesLoaded(group string, set *rules.Set, at time.Time) codecs.AuditEvent {
	b, _ := json.Marshal(set)
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:8])
	study := set.Study
	target := study + "@v" + strconv.Itoa(set.Version)
	if study == "default" {
		study = ""
	}
	after, _ := json.Marshal(map[string]any{"study": set.Study, "version": set.Version, "rules": len(set.Rules), "sha256": digest})
	return codecs.AuditEvent{AuditID: codecs.AuditRulesLoaded + ":" + group + ":" + target + ":" + digest, Action: codecs.AuditRulesLoaded,
		Actor: "group:" + group, At: at.UTC(), StudyID: study, Target: target, After: after}
}

// PlanAdjusted is the event of plan adjustment cmd as the subject group
// applied it: before is the plan it replaced (none for a first plan). Its
// id is the command's, so the group sending it again after a crash, or for
// a repeat of the command, records it once.
func PlanAdjusted(cmd codecs.Command, before json.RawMessage) codecs.AuditEvent {
	actor := cmd.By
	if !strings.HasPrefix(actor, "cli:") {
		actor = Key(cmd.By)
	}
	return codecs.AuditEvent{V: codecs.WireVersion, AuditID: "command:" + cmd.CommandID, Action: codecs.AuditPlanAdjust, Actor: actor,
		At: cmd.At.UTC(), StudyID: cmd.StudyID, SubjectID: cmd.SubjectID, Target: cmd.SubjectID, Before: before, After: cmd.Plan}
}
