-- The study registry's roster: one row per revision of a subject's
-- enrolment (enrolled, transferred, withdrawn, completed), from
-- epro-enrolments. The latest revision is a subject's current binding:
-- argMax(…, revision) or FINAL. Compliance counts every enrolled subject
-- from its enrolment day, including subjects that never reported.
CREATE TABLE IF NOT EXISTS {db}.enrolments (
    enrolment_id    String,
    subject_id      String,
    study_id        String,
    site_id         String,
    status          Enum8('active' = 1, 'withdrawn' = 2, 'completed' = 3),
    enrolled_at     DateTime('UTC'),
    ended_at        Nullable(DateTime('UTC')),
    revision        UInt32,
    by_key          String,
    at              DateTime('UTC'),
    kafka_topic     String,
    kafka_partition UInt16,
    kafka_offset    UInt64,
    inserted_at     DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (study_id, subject_id, revision);

CREATE TABLE IF NOT EXISTS {db}.enrolment_ids (
    enrolment_id    String,
    kafka_partition UInt16,
    kafka_offset    UInt64
) ENGINE = ReplacingMergeTree
ORDER BY enrolment_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.enrolment_ids_mv TO {db}.enrolment_ids
AS SELECT enrolment_id, kafka_partition, kafka_offset FROM {db}.enrolments;
