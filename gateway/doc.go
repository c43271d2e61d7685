// Package gateway is eprostream's HTTP ingest API: patient apps and partner
// platforms post submissions here, and operators adjust medication plans
// and acknowledge alerts.
//
// A submission is answered 202 only once Kafka acknowledged it (acks=all);
// every other outcome is an error that says what is wrong:
//
//	400  the body is not a valid submission (every field error listed)
//	401  no API key, or an unknown, revoked or expired one
//	403  the key may not act for this study, or lacks the role
//	409  the same message_id or Idempotency-Key is being processed right now
//	413  the body is over the size limit
//	415  the body is not JSON (application/json or application/fhir+json)
//	422  the Idempotency-Key or message_id was used for a different body
//	429  over the key's or the overall rate limit (Retry-After says when)
//	503  Kafka (or, for an unknown key, Redis) cannot take it now: retry
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
