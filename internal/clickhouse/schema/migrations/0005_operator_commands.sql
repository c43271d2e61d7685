-- The operators' audit trail: every plan adjustment and alert acknowledgement
-- sent through the gateway, one row per command id. A plan adjustment the
-- subject group refused (a stale fencing token) is here and in dlq_events.
-- Time to acknowledge = operator_commands.at - alerts.raised_at, joined on
-- alert_id.
CREATE TABLE IF NOT EXISTS {db}.operator_commands (
    command_id      String,
    kind            Enum8('plan_adjusted' = 1, 'alert_acknowledged' = 2),
    study_id        String,
    subject_id      String,
    alert_id        String,
    fence           Int64,
    plan            String,
    by_key          String,
    at              DateTime('UTC'),
    kafka_topic     String,
    kafka_partition UInt16,
    kafka_offset    UInt64,
    inserted_at     DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(at)
ORDER BY (study_id, subject_id, command_id);

CREATE TABLE IF NOT EXISTS {db}.command_ids (
    command_id      String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY command_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.command_ids_mv TO {db}.command_ids
AS SELECT command_id, kafka_partition, kafka_offset FROM {db}.operator_commands;
