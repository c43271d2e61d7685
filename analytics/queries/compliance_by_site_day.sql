-- Compliance per study, site and day: of the subjects enrolled at the site
-- that day, how many reported. A subject of the registry's roster counts at
-- its current site from its enrolment day to its end day (withdrawal or
-- completion), whether it ever reported or not; a subject the roster does
-- not hold (its producer bypassed the registry) counts from its first
-- report. Every day of the range is listed for a site with enrolled
-- subjects, also the days nobody reported (compliance 0). Report days are
-- the device's local days (submitted_at + offset_s); enrolment days are UTC.
--
-- Parameters, in order:
--   1. from Date  first day, inclusive ('YYYY-MM-DD' or time.Time)
--   2. to   Date  last day, inclusive
--
-- Columns:
--   study_id       String
--   site_id        String
--   day            Date     local day
--   reporting      UInt64   subjects with at least one report that day
--   enrolled       UInt64   subjects enrolled at the site that day
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
    -- One row per enrolled subject and day of the range it was enrolled.
    SELECT study_id, site_id, day, count() AS enrolled
    FROM
    (
        SELECT
            study_id,
            site_id,
            subject_id,
            greatest(first_day, toDate(?)) AS start_day,
            least(last_day, toDate(?)) AS end_day
        FROM
        (
            -- The roster: each subject's latest revision.
            SELECT
                study_id,
                argMax(site_id, revision) AS site_id,
                subject_id,
                toDate(argMax(enrolled_at, revision)) AS first_day,
                toDate(if(isNull(argMax(ended_at, revision)), toDateTime('2105-12-31 00:00:00', 'UTC'),
                    assumeNotNull(argMax(ended_at, revision)))) AS last_day
            FROM {db}.enrolments
            GROUP BY study_id, subject_id
            UNION ALL
            -- Subjects the roster does not hold: from their first report.
            SELECT
                study_id,
                site_id,
                subject_id,
                min(toDate(submitted_at + offset_s)) AS first_day,
                toDate('2105-12-31') AS last_day
            FROM {db}.submissions
            WHERE subject_id NOT IN (SELECT subject_id FROM {db}.enrolments)
            GROUP BY study_id, site_id, subject_id
        )
        WHERE start_day <= end_day
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
