-- Daily compliance per site: reports and distinct reporting subjects per
-- site and local day (the device's day, from its UTC offset).
CREATE TABLE IF NOT EXISTS {db}.site_daily (
    day      Date,
    study_id String,
    site_id  String,
    reports  AggregateFunction(count),
    subjects AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (study_id, site_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.site_daily_mv TO {db}.site_daily
AS SELECT
    toDate(submitted_at + offset_s) AS day,
    study_id,
    site_id,
    countState() AS reports,
    uniqExactState(subject_id) AS subjects
FROM {db}.submissions
GROUP BY day, study_id, site_id;

-- Daily symptom severity per study: PRO-CTCAE items' count, mean and worst.
CREATE TABLE IF NOT EXISTS {db}.study_daily_symptoms (
    day       Date,
    study_id  String,
    item_code String,
    n         AggregateFunction(count),
    mean      AggregateFunction(avg, Float64),
    worst     AggregateFunction(max, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (study_id, item_code, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.study_daily_symptoms_mv TO {db}.study_daily_symptoms
AS SELECT
    toDate(submitted_at + offset_s) AS day,
    study_id,
    code AS item_code,
    countState() AS n,
    avgState(value) AS mean,
    maxState(value) AS worst
FROM {db}.submissions
ARRAY JOIN item_codes AS code, item_values AS value
WHERE instrument = 'PRO-CTCAE'
GROUP BY day, study_id, item_code;
