-- A dead letter is identified by where its record came from (group, topic,
-- partition, offset of the source record), not by its place on epro-dlq: a
-- group that restarts before committing dead-letters the record again, and
-- that second copy on epro-dlq is the same dead letter. The sink looks the
-- id up here before inserting, as for every other table, so dlq_events holds
-- one row per dead-lettered record. A record on epro-dlq without source
-- headers is identified by its own place there ('dlq/' topic/partition/offset).
ALTER TABLE {db}.dlq_events ADD COLUMN dead_letter_id String
    DEFAULT concat(source_group, '/', source_topic, '/', toString(source_partition), '/', toString(source_offset))
    AFTER dlq_offset;

CREATE TABLE IF NOT EXISTS {db}.dlq_ids (
    dead_letter_id String,
    dlq_partition  UInt16,
    dlq_offset     UInt64
) ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.dlq_ids_mv TO {db}.dlq_ids
AS SELECT dead_letter_id, dlq_partition, dlq_offset FROM {db}.dlq_events;

INSERT INTO {db}.dlq_ids SELECT dead_letter_id, dlq_partition, dlq_offset FROM {db}.dlq_events;
