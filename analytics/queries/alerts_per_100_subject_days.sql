-- Alert rate per study and site: alerts raised per 100 subject-days over a
-- range of days. Subject-days are distinct (subject, local day) pairs with
-- at least one report, read from site_daily. An alert counts once (by
-- alert_id) on the UTC day of its first raised_at: alerts carry no UTC
-- offset, so near the range's ends an alert may fall on the other side of
-- the subject's local midnight. A site with alerts but no subject-days in
-- the range (only time-driven alerts) has a NULL rate.
--
-- Parameters, in order:
--   1. from Date  first day, inclusive ('YYYY-MM-DD' or time.Time)
--   2. to   Date  last day, inclusive
--
-- Columns:
--   study_id                    String
--   site_id                     String
--   alerts                      UInt64             alerts raised in the range
--   subject_days                UInt64             subject-days in the range
--   alerts_per_100_subject_days Nullable(Float64)  alerts / subject_days * 100, 2 decimals
--
-- Ordered by study_id, site_id.
SELECT
    study_id,
    site_id,
    alerts,
    subject_days,
    if(subject_days = 0, NULL, round(alerts / subject_days * 100, 2)) AS alerts_per_100_subject_days
FROM
(
    -- One stream of both facts, filtered once: the range cannot reach into
    -- the branches without repeating the parameters.
    SELECT study_id, site_id, sum(alert) AS alerts, sum(subjects) AS subject_days
    FROM
    (
        SELECT study_id, site_id, day, toUInt64(0) AS alert, uniqExactMerge(subjects) AS subjects
        FROM {db}.site_daily
        GROUP BY study_id, site_id, day
        UNION ALL
        SELECT study_id, site_id, toDate(min(raised_at)) AS day, toUInt64(1) AS alert, toUInt64(0) AS subjects
        FROM {db}.alerts
        GROUP BY alert_id, study_id, site_id
    )
    WHERE day >= toDate(?) AND day <= toDate(?)
    GROUP BY study_id, site_id
)
ORDER BY study_id, site_id
