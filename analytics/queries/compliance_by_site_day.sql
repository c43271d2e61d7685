-- Compliance per study, site and local day: of the subjects enrolled at the
-- site by that day (first report on or before it), how many reported.
-- Every day of the range is listed for a site with enrolled subjects, also
-- the days nobody reported (compliance 0). Days are the device's local days
-- (submitted_at + offset_s). Reporting subjects come from site_daily,
-- enrolment from the whole history of submissions.
--
-- Parameters, in order:
--   1. from Date  first local day, inclusive ('YYYY-MM-DD' or time.Time)
--   2. to   Date  last local day, inclusive
--
-- Columns:
--   study_id       String
--   site_id        String
--   day            Date     local day
--   reporting      UInt64   subjects with at least one report that day
--   enrolled       UInt64   subjects whose first report is on or before day
--   compliance_pct Float64  reporting / enrolled * 100, 1 decimal
--
-- Ordered by study_id, site_id, day.
SELECT
    study_id,
    site_id,
    day,
    reporting,
    enrolled,
    round(reporting / enrolled * 100, 1) AS compliance_pct
FROM
(
    -- One row per enrolled subject and day of the range from its first day.
    SELECT study_id, site_id, day, count() AS enrolled
    FROM
    (
        SELECT
            study_id,
            site_id,
            subject_id,
            min(toDate(submitted_at + offset_s)) AS first_day,
            greatest(first_day, toDate(?)) AS start_day,
            toDate(?) AS end_day
        FROM {db}.submissions
        GROUP BY study_id, site_id, subject_id
        HAVING start_day <= end_day
    )
    ARRAY JOIN arrayMap(i -> start_day + i, range(toUInt32(end_day - start_day + 1))) AS day
    GROUP BY study_id, site_id, day
)
ALL LEFT JOIN
(
    -- site_daily is small (sites x days): read whole, as the range cannot
    -- reach into this subquery without repeating the parameters.
    SELECT study_id, site_id, day, uniqExactMerge(subjects) AS reporting
    FROM {db}.site_daily
    GROUP BY study_id, site_id, day
) USING (study_id, site_id, day)
ORDER BY study_id, site_id, day
