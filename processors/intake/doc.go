// Package intake is the stateless goka group that turns raw submissions into
// clean ones.
//
// Input:  epro-submissions (key: subject_id; value: native JSON envelope or
// FHIR R4 QuestionnaireResponse, raw bytes).
// Output: epro-clean (key: subject_id taken from the validated body, so a
// producer's wrong key cannot split a subject; value: codecs.CleanSubmission),
// and epro-dlq (original key and bytes, reason in headers) for whatever does
// not decode or validate.
//
// Intake keeps no table, so it assumes nothing about co-partitioning; it
// re-keys by subject_id, which is what the subject group is partitioned by.
// Dates are judged against the record's Kafka timestamp, not the wall clock,
// so a replay makes the same decisions.
package intake
