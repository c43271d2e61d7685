-- One row per submission (once: the warehouse sink inserts each message_id
-- once). Analysts filter by study and site and read time ranges: the key
-- starts with study_id, site_id, subject_id so a site's or a subject's rows
-- are contiguous, and months partition the time. message_id closes the key
-- so ReplacingMergeTree can fold a duplicate as a last safety net.
-- Free-text answers are not stored here (only which items held text).
CREATE TABLE IF NOT EXISTS {db}.submissions (
    message_id         String,
    study_id           String,
    site_id            String,
    subject_id         String,
    instrument         String,
    instrument_version String,
    source             String,
    format             String,
    submitted_at       DateTime('UTC'),
    offset_s           Int32,
    received_at        DateTime('UTC'),
    item_codes         Array(String),
    item_values        Array(Float64),
    item_units         Array(String),
    text_item_codes    Array(String),
    score_codes        Array(String),
    score_values       Array(Float64),
    extra              String,
    kafka_topic        String,
    kafka_partition    UInt16,
    kafka_offset       UInt64,
    inserted_at        DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(submitted_at)
ORDER BY (study_id, site_id, subject_id, submitted_at, message_id);

-- The sink looks ids up here before inserting, by primary key.
CREATE TABLE IF NOT EXISTS {db}.submission_ids (
    message_id      String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY message_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.submission_ids_mv TO {db}.submission_ids
AS SELECT message_id, kafka_partition, kafka_offset FROM {db}.submissions;
