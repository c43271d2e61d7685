-- One row per alert id. A replayed alert carries the same alert_id but a
-- later raised_at, so raised_at stays out of the key: the key is what makes
-- an alert the same alert.
CREATE TABLE IF NOT EXISTS {db}.alerts (
    alert_id           String,
    rule_id            String,
    rule_version       UInt32,
    severity           Enum8('info' = 1, 'warning' = 2, 'urgent' = 3),
    study_id           String,
    site_id            String,
    subject_id         String,
    message_id         String,
    submitted_at       DateTime('UTC'),
    raised_at          DateTime('UTC'),
    evidence_item      String,
    evidence_values    Array(Float64),
    evidence_unit      String,
    evidence_baseline  Nullable(Float64),
    evidence_threshold Float64,
    evidence_detail    String,
    kafka_topic        String,
    kafka_partition    UInt16,
    kafka_offset       UInt64,
    inserted_at        DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(submitted_at)
ORDER BY (study_id, site_id, subject_id, alert_id);

CREATE TABLE IF NOT EXISTS {db}.alert_ids (
    alert_id        String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY alert_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alert_ids_mv TO {db}.alert_ids
AS SELECT alert_id, kafka_partition, kafka_offset FROM {db}.alerts;
