-- A message_id is unique within its study, not across studies: two studies'
-- apps may both send "1". The warehouse deduplicates submissions by
-- (study_id, message_id), written as submission_key = study_id '/' message_id
-- ('/' never occurs in a study id), and looks keys up here before inserting.
-- submission_ids (message_id alone) stays for analysts' joins.
ALTER TABLE {db}.submissions ADD COLUMN submission_key String
    DEFAULT concat(study_id, '/', message_id)
    AFTER message_id;

CREATE TABLE IF NOT EXISTS {db}.submission_keys (
    submission_key  String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY submission_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.submission_keys_mv TO {db}.submission_keys
AS SELECT submission_key, kafka_partition, kafka_offset FROM {db}.submissions;

INSERT INTO {db}.submission_keys SELECT submission_key, kafka_partition, kafka_offset FROM {db}.submissions;
