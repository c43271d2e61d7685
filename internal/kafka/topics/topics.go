// Package topics is the catalogue of eprostream's Kafka topics: their names
// under a prefix and the settings `eprostream migrate` creates them with.
// The groups that write a topic export its name from here, so a name is
// spelled once.
package topics

import (
	"strconv"
	"time"
)

// Default topic and group names, before the prefix.
const (
	Submissions = "epro-submissions"
	Clean       = "epro-clean"
	DLQ         = "epro-dlq"
	Commands    = "epro-commands"
	Alerts      = "epro-alerts"
	// Enrolments is the study registry's roster: one record per subject,
	// compacted, so the latest binding of every subject is kept.
	Enrolments = "epro-enrolments"
	// AlertIndex maps each alert id to its subject and study (compacted):
	// the gateway checks acknowledgements against it.
	AlertIndex = "epro-alert-index"
	// Questionnaires holds the FHIR Questionnaires studies add at run time
	// (compacted): every gateway maps responses through them.
	Questionnaires = "epro-questionnaires"
	// Audit holds operator actions (API keys, webhook subscriptions, rule
	// sets loaded), append-only and kept forever; the warehouse lands them
	// in audit_events.
	Audit = "epro-audit"
	// SubjectGroup is the goka group whose Persist table is SubjectGroup+"-table".
	SubjectGroup = "subject"
)

// Names are the topic names of one environment.
type Names struct {
	Prefix         string
	Submissions    string
	Clean          string
	DLQ            string
	Commands       string
	Alerts         string
	Enrolments     string
	AlertIndex     string
	Questionnaires string
	Audit          string
	SubjectTable   string
}

// NewNames returns the names under prefix.
func NewNames(prefix string) Names {
	return Names{
		Prefix:         prefix,
		Submissions:    prefix + Submissions,
		Clean:          prefix + Clean,
		DLQ:            prefix + DLQ,
		Commands:       prefix + Commands,
		Alerts:         prefix + Alerts,
		Enrolments:     prefix + Enrolments,
		AlertIndex:     prefix + AlertIndex,
		Questionnaires: prefix + Questionnaires,
		Audit:          prefix + Audit,
		SubjectTable:   Group(prefix, SubjectGroup) + "-table",
	}
}

// Group returns a goka group name under prefix.
func Group(prefix, group string) string { return prefix + group }

// Spec is how one topic is created.
type Spec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Config            map[string]string
}

const day = 24 * time.Hour

func retention(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// MinInsyncReplicas is the min.insync.replicas topics get from Catalogue
// for a replication factor, or "" for the broker's default. With three
// replicas or more, two in sync make an acks=all write survive the loss of
// any one broker while one broker may be down and writes go on. With one or
// two replicas there is no such choice: 2 of 2 would stop every write while
// a broker is down, 1 is the broker's default anyway, so the broker's
// setting is left to its operators.
func MinInsyncReplicas(replication int) string {
	if replication >= 3 {
		return "2"
	}
	return ""
}

// Catalogue returns every topic of one environment. Submissions are the
// system of record and are kept forever; derived topics can be rebuilt from
// them and keep 30 days; the subject table is compacted; the audit trail
// is kept forever.
func Catalogue(prefix string, partitions int, replication int) []Spec {
	n := NewNames(prefix)
	minISR := MinInsyncReplicas(replication)
	spec := func(name, cleanup string, keep time.Duration) Spec {
		cfg := map[string]string{"cleanup.policy": cleanup}
		if minISR != "" {
			cfg["min.insync.replicas"] = minISR
		}
		if cleanup == "delete" {
			cfg["retention.ms"] = retention(keep)
		}
		return Spec{Name: name, Partitions: int32(partitions), ReplicationFactor: int16(replication), Config: cfg}
	}
	return []Spec{
		spec(n.Submissions, "delete", -1),
		spec(n.Clean, "delete", 30*day),
		spec(n.DLQ, "delete", 90*day),
		spec(n.Commands, "delete", 30*day),
		spec(n.Alerts, "delete", 30*day),
		spec(n.SubjectTable, "compact", 0),
		spec(n.Enrolments, "compact", 0),
		spec(n.AlertIndex, "compact", 0),
		spec(n.Questionnaires, "compact", 0),
		spec(n.Audit, "delete", -1),
	}
}
