-- Time to alert per study and site: seconds from a submission's arrival on
-- Kafka (submissions.received_at) to the alert it triggered (raised_at), as
-- the median and 90th percentile, with the number of alerts measured.
-- An alert counts once, at its first raised_at (a replayed alert keeps its
-- alert_id and carries a later raised_at). Alerts without a submission in
-- the warehouse (time-driven ones such as missed diary) are left out.
-- Percentiles are quantileExact: the element at 0-based position
-- floor(level * n) of the sorted delays, not interpolated (the p50 of 5 and
-- 7 seconds is 7).
--
-- Parameters, in order:
--   1. from DateTime  first raised_at, inclusive (UTC when given as text)
--   2. to   DateTime  end of the range, exclusive
--
-- Columns:
--   study_id String
--   site_id  String
--   alerts   UInt64  alerts measured
--   p50_s    Int64   median seconds from received_at to raised_at
--   p90_s    Int64   90th percentile of the same
--
-- Ordered by study_id, site_id.
SELECT
    study_id,
    site_id,
    count() AS alerts,
    quantileExact(0.5)(delay_s) AS p50_s,
    quantileExact(0.9)(delay_s) AS p90_s
FROM
(
    SELECT study_id, site_id, toInt64(first_raised_at) - toInt64(received_at) AS delay_s
    FROM
    (
        SELECT alert_id, study_id, site_id, message_id, min(raised_at) AS first_raised_at
        FROM {db}.alerts
        GROUP BY alert_id, study_id, site_id, message_id
        HAVING first_raised_at >= toDateTime(?, 'UTC') AND first_raised_at < toDateTime(?, 'UTC')
    )
    ANY INNER JOIN
    (
        SELECT study_id, message_id, received_at
        FROM {db}.submissions
        WHERE message_id IN (SELECT message_id FROM {db}.alerts)
    ) USING (study_id, message_id)
)
GROUP BY study_id, site_id
ORDER BY study_id, site_id
