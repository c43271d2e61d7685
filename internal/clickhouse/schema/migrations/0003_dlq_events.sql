-- Data-quality analytics: one row per dead-lettered record, identified by
-- its place on epro-dlq. The original bytes stay on the topic (they may hold
-- patients' answers); only their size is kept here.
CREATE TABLE IF NOT EXISTS {db}.dlq_events (
    dlq_topic        String,
    dlq_partition    UInt16,
    dlq_offset       UInt64,
    original_key     String,
    class            String,
    reason           String,
    source_group     String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    dead_at          DateTime('UTC'),
    size_bytes       UInt32,
    inserted_at      DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(dead_at)
ORDER BY (dlq_topic, dlq_partition, dlq_offset);
