-- Steepest worsening: the subject x PRO-CTCAE item pairs whose latest value
-- rose most above the subject's baseline for the item, the baseline being
-- the mean of the item's first 3 reports (by submitted_at), as the
-- worsening rule defines it. Only pairs with at least 4 reports of the item
-- are ranked, so the latest value is never part of its own baseline.
--
-- Parameters, in order:
--   1. limit UInt  how many pairs (an integer, not text)
--
-- Columns:
--   study_id   String
--   site_id    String
--   subject_id String
--   item_code  String
--   baseline   Float64  mean of the first 3 values
--   latest     Float64  value of the latest report
--   rise       Float64  latest - baseline (negative when improved)
--
-- Ordered by rise descending, then study_id, site_id, subject_id, item_code.
SELECT
    study_id,
    site_id,
    subject_id,
    item_code,
    baseline,
    latest,
    latest - baseline AS rise
FROM
(
    SELECT
        study_id,
        site_id,
        subject_id,
        item_code,
        arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((submitted_at, value)))) AS series,
        arraySum(arraySlice(series, 1, 3)) / 3 AS baseline,
        series[length(series)] AS latest
    FROM {db}.submissions
    ARRAY JOIN
        item_codes AS item_code,
        item_values AS value
    WHERE instrument = 'PRO-CTCAE'
    GROUP BY study_id, site_id, subject_id, item_code
    HAVING length(series) >= 4
)
ORDER BY rise DESC, study_id, site_id, subject_id, item_code
LIMIT ?
