// Package subject is the goka group that keeps every subject's state and
// raises clinical alerts.
//
// Inputs: epro-clean (codecs.CleanSubmission) and epro-commands
// (codecs.Command), both keyed by subject_id and co-partitioned with the
// group table (same partition count, same key, goka's default hasher), which
// `eprostream migrate` guarantees by creating them alike.
// Table:  subject-table, key subject_id, value codecs.SubjectState.
// Outputs: epro-alerts (key subject_id, value codecs.Alert) and epro-dlq.
//
// Exactly-once effect: the state records the position of the last record
// that changed it on each input (topic ID, partition, offset) and the ids of
// the last codecs.MaxApplied submissions and commands it applied, in the
// same table record as the state, and goka commits an input offset only
// after that record and the alerts are acknowledged. A replay of the
// uncommitted tail after a crash lies at or below that position and changes
// nothing, however old; a duplicate at a new offset is found by its id; alert
// ids are derived from their evidence, so even an alert emitted just before
// a crash and emitted again is the same alert downstream.
//
// Missed diary is time-driven, and goka has no timers. The Scheduler sweeps a
// goka view of subject-table every interval while it holds a Redis lock
// (one sweeper at a time across instances) and sends a check_schedule
// command, stamped with the sweep time, for each subject that has been
// silent longer than the study allows. The group evaluates the rule as of
// the command's time, not its own clock, so replays decide the same, and
// tests drive days of silence by sending commands with a later time instead
// of waiting.
package subject
