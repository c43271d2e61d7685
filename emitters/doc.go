// Package emitters holds typed producers of eprostream's input topics for Go
// programs: SubmissionEmitter for epro-submissions and CommandEmitter for
// epro-commands. Both use acks=all and the idempotent producer, validate
// before sending, respect ctx, and are safe for concurrent use.
package emitters
