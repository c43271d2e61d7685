// Package webhooks delivers clinical alerts (codecs.Alert, from epro-alerts)
// to subscribers' HTTP endpoints, signed, in order, with retries.
//
// # Subscriptions
//
// A Store keeps subscriptions in Redis: an endpoint URL, filters (studies,
// sites, minimum severity) and an HMAC secret that Create returns once.
// The secret itself is kept in Redis, because signing needs it (unlike an
// API key, it cannot be stored as a hash). Keys, under the prefix
// ("eprostream:{env}:"):
//
//	webhook:subs         set of subscription ids          TTL SubscriptionTTL
//	webhook:sub:{id}     subscription JSON (with secret)  TTL SubscriptionTTL
//	webhook:status:{id}  hash of counters and last times  TTL StatusTTL
//	webhook:dead:{id}    list of dead letters, capped     TTL StatusTTL
//
// A subscription's TTL (365 days) is refreshed whenever it is updated and on
// every successful delivery, so only subscriptions that are neither changed
// nor reached for a year expire. Status and dead letters expire 7 days after
// their last write.
//
// # Requests
//
// Each attempt is a POST of the alert's JSON with
//
//	Content-Type: application/json
//	X-Eprostream-Alert-Id: <alert_id>
//	X-Eprostream-Timestamp: <unix seconds of this attempt>
//	X-Eprostream-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//
// Receivers check requests with Verify (or the same three lines in any
// language) and should answer 2xx quickly and work afterwards. Any 2xx is
// success; any other status (redirects included: they are not followed),
// a network error or no answer within RequestTimeout is a failed attempt.
//
// # Delivery guarantees
//
// Delivery is at least once: a receiver may see an alert more than once
// (a retry after its 2xx was lost, a redelivery after a restart) and must
// deduplicate on X-Eprostream-Alert-Id. Alert ids are deterministic (the
// same evidence gives the same id), so a replayed alert carries the same id.
//
// The Deliverer keeps one bounded queue and one goroutine per subscription:
// alerts for one subscriber go out one at a time in the order Enqueue saw
// them, and a slow or failing subscriber delays nobody else. A failed
// attempt is retried with capped exponential backoff; after Attempts
// failures the alert is dead-lettered for that subscriber (recorded in
// webhook:dead:{id} with its id, last status and error, and attempts) and
// the next alert goes out. We chose moving on over blocking the queue: one
// undeliverable alert must not hold back the urgent ones behind it, and the
// dead letter tells an operator exactly what to replay.
//
// When a subscriber's queue is full, Enqueue dead-letters the alert for that
// subscriber with reason "queue full" instead of blocking: blocking the
// producer would make every other subscriber wait for the slowest one.
// Alerts for a paused subscription are dead-lettered with reason "paused",
// so nothing is dropped without a record.
//
// Enqueue's settled callback runs once the alert is delivered or
// dead-lettered for every matching subscription. A Kafka consumer of
// epro-alerts marks the alert's offset there (with package orderedcommit),
// so an alert still queued or in flight when the process stops is read and
// delivered again after the restart. Order holds within one process; with
// several processes sharing epro-alerts as a consumer group, it holds per
// subject (the topic's key), which is the order that matters for a patient.
//
// Logs carry ids (subscription, alert, study, site), statuses and errors,
// never an alert's evidence.
package webhooks
