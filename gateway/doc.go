// Package gateway is eprostream's HTTP ingest API: patient apps and partner
// platforms post submissions here, and operators enrol, transfer and
// withdraw subjects, adjust medication plans and acknowledge alerts.
//
// Every request is decided from the server's own records, never from what
// its body claims: the key's studies and roles (internal/httpauth), the
// study catalogue (catalog.CheckSubmission: study, site, instrument, items)
// and the subject's enrolment (the roster, a local copy of
// epro-enrolments). A submission is answered 202 only for an active
// subject enrolled in the submission's study at its site (or, in a
// first-report study, a new subject, enrolled by this report), with every
// item understood and in range, and only once Kafka acknowledged it
// (acks=all). Every other outcome is an error that says what is wrong:
//
//	400  the body is not a valid submission (every field error listed)
//	401  no API key, or an unknown, revoked or expired one
//	403  the key may not act for this study, or lacks the role
//	404  (operator commands) the subject is not enrolled in the request's study
//	409  the same message_id or Idempotency-Key is being processed right now;
//	     the subject is withdrawn or completed
//	413  the body is over the size limit
//	415  the body is not JSON (application/json or application/fhir+json)
//	422  the Idempotency-Key or message_id was used for a different body;
//	     the subject is not enrolled in the study, or is at another site
//	429  over the key's or the overall rate limit (Retry-After says when)
//	503  Kafka (or, for an unknown key, Redis) cannot take it now: retry
//
// A refusal never names another study or its data: a subject enrolled in
// another study and one enrolled nowhere get the same answer ("is not
// enrolled in study <the caller's>"), except that a first-report study
// accepts the second and not the first.
//
// Per request the gateway needs from Redis: the key lookup (cached for a
// few seconds), a GCRA check per limit (per key, then overall), a claim of
// the idempotency key (SET NX GET) and, after Kafka's acknowledgement, the
// completion. Requests in flight together share these round trips (see
// coalesce.go): one GCRA call per key and one pipeline of claims for all of
// them; completions are stored in the background, in pipelines, after the
// answer. A batch claims and completes all its items in one pipeline each.
//
// While Redis is down, ingest goes on: keys seen in the last 15 minutes are
// trusted, limits fall back to a local share (see ratelimit), and
// idempotency keys are skipped; a retry during the outage may then write a
// second Kafka record, which the subject group and the warehouse drop by
// message_id.
package gateway
