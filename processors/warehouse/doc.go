// Package warehouse is the goka group that lands every clean submission,
// alert, operator command and dead letter in ClickHouse, once.
//
// Inputs: epro-clean (codecs.CleanSubmission), epro-alerts (codecs.Alert),
// epro-commands (codecs.Command: plan adjustments and alert
// acknowledgements, the operators' audit trail; the scheduler's checks are
// skipped) and epro-dlq (raw bytes with dlq headers). Output: epro-dlq, for records
// it cannot decode and rows ClickHouse would refuse. No table: the group
// keeps nothing of its own and assumes nothing about co-partitioning.
//
// Every record's offset is committed through goka's DeferCommit only after
// the chsink.Sink has inserted its row (or found it already stored, or
// dead-lettered it); see package chsink for how no row is lost or doubled.
package warehouse
