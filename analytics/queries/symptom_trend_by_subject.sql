-- Symptom trend of one subject: the daily mean and maximum of one item, by
-- the device's local day (submitted_at + offset_s), over all the subject's
-- reports that carry the item.
--
-- Parameters, in order:
--   1. subject_id String
--   2. item_code  String  e.g. 'PAIN_SEVERITY'
--
-- Columns:
--   day        Date     local day
--   reports    UInt64   reports of the item that day
--   mean_value Float64  mean of the item's values that day
--   max_value  Float64  highest value that day
--
-- Ordered by day.
SELECT
    toDate(submitted_at + offset_s) AS day,
    count() AS reports,
    avg(value) AS mean_value,
    max(value) AS max_value
FROM {db}.submissions
ARRAY JOIN
    item_codes AS item_code,
    item_values AS value
WHERE subject_id = ? AND item_code = ?
GROUP BY day
ORDER BY day
