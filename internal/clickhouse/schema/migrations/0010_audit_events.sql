-- The audit trail: one row per operator action, append-only, each once
-- (ReplacingMergeTree by audit_id, and the warehouse looks ids up before it
-- inserts). From epro-audit (API keys created and revoked, webhook
-- subscriptions created and deleted, rule sets loaded by a group), and from
-- the records that are their own audit trail: epro-enrolments (enrolled,
-- transferred, withdrawn, completed) and the operator commands on
-- epro-commands (plan adjustments, acknowledgements). actor is
-- "key:<API key id>", "cli:<user>", "group:<group>" or, for an enrolment
-- made by a subject's first report, "first-report". No patient answer is
-- ever stored here.
CREATE TABLE IF NOT EXISTS {db}.audit_events (
    audit_id        String,
    action          String,
    actor           String,
    at              DateTime('UTC'),
    study_id        String,
    subject_id      String,
    target          String,
    before          String,
    after           String,
    kafka_topic     String,
    kafka_topic_id  String,
    kafka_partition UInt16,
    kafka_offset    UInt64,
    inserted_at     DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY audit_id;

CREATE TABLE IF NOT EXISTS {db}.audit_ids (
    audit_id        String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY audit_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.audit_ids_mv TO {db}.audit_ids
AS SELECT audit_id, kafka_partition, kafka_offset FROM {db}.audit_events;
