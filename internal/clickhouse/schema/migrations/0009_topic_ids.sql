-- Every row records the Kafka ID of the topic it was read from, beside the
-- topic's name. The warehouse skips rows at or below the highest offset
-- stored for their partition; reading that offset per topic ID, not per
-- name, means a topic deleted and created again under its old name (its
-- offsets start at 0 again) has its rows stored, not skipped as the old
-- topic's. Rows stored before this migration have an empty ID.
ALTER TABLE {db}.submissions ADD COLUMN kafka_topic_id String DEFAULT '' AFTER kafka_topic;
ALTER TABLE {db}.alerts ADD COLUMN kafka_topic_id String DEFAULT '' AFTER kafka_topic;
ALTER TABLE {db}.operator_commands ADD COLUMN kafka_topic_id String DEFAULT '' AFTER kafka_topic;
ALTER TABLE {db}.enrolments ADD COLUMN kafka_topic_id String DEFAULT '' AFTER kafka_topic;
ALTER TABLE {db}.dlq_events ADD COLUMN dlq_topic_id String DEFAULT '' AFTER dlq_topic;
