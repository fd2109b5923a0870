-- Record-level indicators, written once in DuckDB's SQL dialect and run by DuckDB (the default engine) or, transpiled
-- by sqlglot, by Spark SQL. Sections are "-- name: <step> [table|view|output]"; the dollar placeholders are filled from
-- config/records/*.yaml by leaguetables.inputs.records.indicators (code lists, day counts, CASE expressions) and
-- the quarter (qstart, qend: its first and last day). Inputs: the contract views apc, op, ae and the residence
-- lookup (lsoa11 -> icb, imd_quintile). Outputs hold only whole-number counts, so both engines give identical results.
-- Large extracts run in patient buckets (${patients}: one bucket of PSEUDO_HESID hashes, so every step from the
-- episodes on fits in memory); each output's counts are summed over the buckets, and the outputs marked "once", which
-- do not read the episodes, run in the first bucket only; the tables marked "once" are made before the buckets and
-- kept for all of them ("bucketed": only when there is more than one bucket).

-- name: quarter_patients table once
-- the patients with an episode admitted or discharged in the quarter: every output counts spells or continuous spells
-- admitted or discharged in the quarter (a spell's admission and discharge dates are those of its episodes, a
-- continuous spell's those of its spells), so the other patients' episodes cannot change any count and are not read
-- further (a one-quarter run on a year's extract reads about a quarter of the episodes); computed once, before the
-- patient buckets
SELECT DISTINCT PSEUDO_HESID FROM apc
WHERE ADMIDATE BETWEEN DATE '${qstart}' AND DATE '${qend}' OR DISDATE BETWEEN DATE '${qstart}' AND DATE '${qend}'

-- name: quarter_episodes table once bucketed
-- with more than one patient bucket only: the quarter's patients' episodes (the columns the spells read), read from the
-- files once instead of once per bucket
SELECT PSEUDO_HESID, PROCODE3, ADMIDATE, ADMIMETH, CLASSPAT, STARTAGE, SEX, LSOA11, DIAG_4_01, OPERTN_4_01, OPDATE_01,
       EPIORDER, EPISTART, EPIKEY, DISDATE, DISMETH, DOD
FROM apc
WHERE PSEUDO_HESID IN (SELECT PSEUDO_HESID FROM quarter_patients)

-- name: spells table
-- provider spells (same patient, provider and admission date; HES's definition): admission method, patient class,
-- age, sex, residence, diagnosis and procedure from the first episode and discharge date and method from the last,
-- the episodes ordered by EPIORDER, then EPISTART, then EPIKEY (unique: no ties) — the fields of the episode with the
-- least and the greatest such key (arg_min/arg_max: only the key is compared), so one grouping pass, no sort; the date
-- of death (ONS) if any
SELECT g.pid, g.procode, g.admidate, g.l.disdate AS disdate, g.f.admimeth AS admimeth, g.f.classpat AS classpat,
       g.l.dismeth AS dismeth, g.f.age AS age, g.f.sex AS sex, g.f.lsoa11 AS lsoa11, g.f.diag AS diag,
       g.f.opertn AS opertn, g.f.opdate AS opdate, g.dod
FROM (SELECT PSEUDO_HESID AS pid, PROCODE3 AS procode, ADMIDATE AS admidate,
             arg_min(struct_pack(admimeth := ADMIMETH, classpat := CLASSPAT,
                                 age := CASE WHEN STARTAGE >= 7001 THEN 0 ELSE STARTAGE END,
                                 sex := CASE WHEN SEX IN ('1', '2') THEN SEX ELSE '9' END, lsoa11 := LSOA11,
                                 diag := DIAG_4_01, opertn := OPERTN_4_01, opdate := OPDATE_01),
                     struct_pack(o := EPIORDER, s := EPISTART, k := EPIKEY)) AS f,
             arg_max(struct_pack(disdate := DISDATE, dismeth := DISMETH),
                     struct_pack(o := EPIORDER, s := EPISTART, k := EPIKEY)) AS l,
             MAX(DOD) AS dod
      FROM ${episodes}
      GROUP BY PSEUDO_HESID, PROCODE3, ADMIDATE) AS g

-- name: repeat_patients table
-- patients with more than one provider spell: only their spells need ordering (a single spell is its own continuous
-- inpatient spell, with no earlier or later one)
SELECT pid FROM spells GROUP BY pid HAVING COUNT(*) > 1

-- name: cips_steps view
-- a provider spell continues the patient's previous one (same continuous inpatient spell, CIPS) when it was
-- admitted by transfer within ${gap} days of that spell's discharge
SELECT s.*,
       CASE WHEN s.admimeth IN (${transfer}) AND s.prev_dis IS NOT NULL
                 AND date_diff('day', s.prev_dis, s.admidate) BETWEEN 0 AND ${gap} THEN 0 ELSE 1 END AS new_cips
FROM (SELECT sp.*, LAG(sp.disdate) OVER (PARTITION BY sp.pid ORDER BY sp.admidate, sp.disdate NULLS LAST, sp.procode)
             AS prev_dis
      FROM spells AS sp
      WHERE sp.pid IN (SELECT pid FROM repeat_patients)) AS s

-- name: cips_marks view
SELECT c.*,
       SUM(c.new_cips) OVER (PARTITION BY c.pid ORDER BY c.admidate, c.disdate NULLS LAST, c.procode
                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cips_no,
       LEAD(c.new_cips) OVER (PARTITION BY c.pid ORDER BY c.admidate, c.disdate NULLS LAST, c.procode) AS next_new
FROM cips_steps AS c

-- name: cips view
-- continuous inpatient spells of the repeat patients: admission, age, sex, residence and diagnosis from the first
-- provider spell; discharge, discharge method and the provider it is attributed to (the last provider) from the last
SELECT pid, CAST(cips_no AS BIGINT) AS cips_no,
       MAX(CASE WHEN new_cips = 1 THEN admidate END) AS admidate,
       MAX(CASE WHEN next_new IS NULL OR next_new = 1 THEN disdate END) AS disdate,
       MAX(CASE WHEN next_new IS NULL OR next_new = 1 THEN procode END) AS procode,
       MAX(CASE WHEN next_new IS NULL OR next_new = 1 THEN dismeth END) AS dismeth,
       MAX(CASE WHEN new_cips = 1 THEN admimeth END) AS admimeth,
       MAX(CASE WHEN new_cips = 1 THEN classpat END) AS classpat,
       MAX(CASE WHEN new_cips = 1 THEN age END) AS age,
       MAX(CASE WHEN new_cips = 1 THEN sex END) AS sex,
       MAX(CASE WHEN new_cips = 1 THEN lsoa11 END) AS lsoa11,
       MAX(CASE WHEN new_cips = 1 THEN diag END) AS diag,
       MAX(dod) AS dod
FROM cips_marks
GROUP BY pid, cips_no

-- name: cips_seq table
-- per CIPS ending or starting in the quarter: the discharge date of the patient's latest earlier emergency CIPS
-- (comorbidity proxy) and the admission date of the first later emergency CIPS that can count as a readmission (both
-- over the whole extract); the single provider spell of every other patient is a CIPS with neither
SELECT * FROM (
    SELECT c.*,
           MAX(CASE WHEN c.admimeth IN (${emergency}) THEN c.disdate END)
               OVER (PARTITION BY c.pid ORDER BY c.cips_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS prior_emerg_dis,
           MIN(CASE WHEN c.admimeth IN (${emergency}) AND NOT (${readmit_excluded}) THEN c.admidate END)
               OVER (PARTITION BY c.pid ORDER BY c.cips_no ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
               AS next_emerg_adm
    FROM cips AS c) AS r
WHERE r.disdate BETWEEN DATE '${qstart}' AND DATE '${qend}' OR r.admidate BETWEEN DATE '${qstart}' AND DATE '${qend}'
UNION ALL
SELECT s.pid, CAST(1 AS BIGINT) AS cips_no, s.admidate, s.disdate, s.procode, s.dismeth, s.admimeth, s.classpat,
       s.age, s.sex, s.lsoa11, s.diag, s.dod, CAST(NULL AS DATE) AS prior_emerg_dis, CAST(NULL AS DATE) AS next_emerg_adm
FROM spells AS s
WHERE (s.disdate BETWEEN DATE '${qstart}' AND DATE '${qend}' OR s.admidate BETWEEN DATE '${qstart}' AND DATE '${qend}')
  AND s.pid NOT IN (SELECT pid FROM repeat_patients)

-- name: los output
-- length of stay of ordinary provider spells discharged in the quarter, elective and emergency, by case-mix stratum
-- (diagnosis group and age band: the expected bed days of the observed-over-expected ratio); bed_days_sq, the sum of
-- the squared stays, gives the variance of a sum of stays (the interval of that ratio)
SELECT procode AS trust_code,
       CASE WHEN admimeth IN (${elective}) THEN 'elective' ELSE 'emergency' END AS admission,
       ${diagnosis_group} AS diagnosis_group, ${case_mix_age_band} AS age_band,
       CAST(COUNT(*) AS BIGINT) AS spells,
       CAST(SUM(date_diff('day', admidate, disdate)) AS BIGINT) AS bed_days,
       CAST(SUM(date_diff('day', admidate, disdate) * date_diff('day', admidate, disdate)) AS BIGINT) AS bed_days_sq
FROM spells
WHERE disdate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND classpat IN (${los_classpat})
  AND (admimeth IN (${elective}) OR admimeth IN (${emergency}))
GROUP BY 1, 2, 3, 4

-- name: preop output
-- pre-operative bed days of elective ordinary spells with a procedure date, discharged in the quarter
SELECT procode AS trust_code,
       CAST(COUNT(*) AS BIGINT) AS spells,
       CAST(SUM(date_diff('day', admidate, opdate)) AS BIGINT) AS preop_days,
       CAST(SUM(CASE WHEN opdate > admidate THEN 1 ELSE 0 END) AS BIGINT) AS admitted_before_day_of_surgery
FROM spells
WHERE disdate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND admimeth IN (${elective})
  AND classpat IN (${ordinary}) AND opdate IS NOT NULL
GROUP BY 1

-- name: day_case output
-- elective spells discharged in the quarter whose first primary procedure is in the basket: day cases among them, by
-- basket procedure
SELECT procode AS trust_code, ${basket_procedure} AS procedure,
       CAST(COUNT(*) AS BIGINT) AS spells,
       CAST(SUM(CASE WHEN classpat IN (${day_case}) THEN 1 ELSE 0 END) AS BIGINT) AS day_cases
FROM spells
WHERE disdate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND admimeth IN (${elective})
  AND (classpat IN (${ordinary}) OR classpat IN (${day_case})) AND (${in_basket})
GROUP BY 1, 2

-- name: readmissions output
-- CIPS discharged alive in the quarter (standard exclusions), attributed to the discharging provider; readmitted as
-- an emergency (any provider) 0 to ${readmit_last_day} days after discharge; by age band, sex and admission method
SELECT procode AS trust_code, ${case_mix_age_band} AS age_band, sex,
       CASE WHEN admimeth IN (${elective}) THEN 'elective' WHEN admimeth IN (${emergency}) THEN 'emergency'
            ELSE 'other' END AS admission,
       CAST(COUNT(*) AS BIGINT) AS index_spells,
       CAST(SUM(CASE WHEN next_emerg_adm IS NOT NULL
                      AND date_diff('day', disdate, next_emerg_adm) BETWEEN 0 AND ${readmit_last_day}
                     THEN 1 ELSE 0 END) AS BIGINT) AS readmissions
FROM cips_seq
WHERE disdate BETWEEN DATE '${qstart}' AND DATE '${qend}'
  AND (dismeth IS NULL OR NOT (dismeth IN (${died}) OR dismeth IN (${stillbirth})))
  AND NOT admimeth IN (${maternity_admimeth})
  AND NOT (classpat IN (${regular}) OR classpat IN (${maternity_classpat}))
  AND NOT (${index_excluded})
GROUP BY 1, 2, 3, 4

-- name: mortality output
-- SHMI-style strata: CIPS ending in the quarter (excluding stillbirths, maternity and regular attenders), deaths in
-- hospital or within ${post_days} days of discharge
SELECT procode AS trust_code, ${diagnosis_group} AS diagnosis_group, ${shmi_age_band} AS age_band, sex,
       CASE WHEN admimeth IN (${elective}) THEN 'elective' WHEN admimeth IN (${emergency}) THEN 'emergency'
            ELSE 'other' END AS admission,
       CASE WHEN prior_emerg_dis IS NOT NULL AND date_diff('day', prior_emerg_dis, admidate) BETWEEN 0 AND ${lookback}
            THEN 1 ELSE 0 END AS prior_emergency,
       CAST(COUNT(*) AS BIGINT) AS spells,
       CAST(SUM(CASE WHEN dismeth IN (${died})
                       OR (dod IS NOT NULL AND date_diff('day', disdate, dod) BETWEEN 0 AND ${post_days})
                     THEN 1 ELSE 0 END) AS BIGINT) AS deaths
FROM cips_seq
WHERE disdate BETWEEN DATE '${qstart}' AND DATE '${qend}'
  AND (dismeth IS NULL OR NOT dismeth IN (${stillbirth}))
  AND NOT admimeth IN (${maternity_admimeth})
  AND NOT (classpat IN (${regular}) OR classpat IN (${maternity_classpat}))
GROUP BY 1, 2, 3, 4, 5, 6

-- name: op_follow_up output once
-- attended outpatient appointments in the quarter: first and follow-up (face to face or by telephone), by age band;
-- and the booked first appointments (attended, not attended or cancelled: ${op_booked}), of which the attended ones
-- are a share (the variance of the follow-up ratio's expected count); the provider's age bands with an attended
-- appointment
SELECT PROCODE3 AS trust_code, ${op_age_band} AS age_band,
       CAST(SUM(CASE WHEN FIRSTATT IN (${op_first}) AND ATTENDED IN (${op_attended}) THEN 1 ELSE 0 END) AS BIGINT)
           AS first_attendances,
       CAST(SUM(CASE WHEN FIRSTATT IN (${op_follow_up}) AND ATTENDED IN (${op_attended}) THEN 1 ELSE 0 END)
           AS BIGINT) AS follow_ups,
       CAST(SUM(CASE WHEN FIRSTATT IN (${op_first}) THEN 1 ELSE 0 END) AS BIGINT) AS booked_first_appointments
FROM op
WHERE APPTDATE BETWEEN DATE '${qstart}' AND DATE '${qend}' AND ATTENDED IN (${op_booked})
GROUP BY 1, 2
HAVING SUM(CASE WHEN ATTENDED IN (${op_attended}) THEN 1 ELSE 0 END) > 0

-- name: ae_12hr output once
-- type 1 A&E attendances arriving in the quarter with a known duration: more than ${long_wait} minutes from arrival,
-- by age band
SELECT PROCODE3 AS trust_code, ${ae_age_band} AS age_band,
       CAST(COUNT(*) AS BIGINT) AS attendances,
       CAST(SUM(CASE WHEN DEPDUR > ${long_wait} THEN 1 ELSE 0 END) AS BIGINT) AS over_12_hours
FROM ae
WHERE ARRIVALDATE BETWEEN DATE '${qstart}' AND DATE '${qend}' AND AEDEPTTYPE IN (${ae_type1}) AND DEPDUR IS NOT NULL
GROUP BY 1, 2

-- name: icb_strata output
-- emergency admissions (CIPS admitted in the quarter) by ICB of residence, age band, sex and IMD quintile; and those
-- with an ambulatory-care-sensitive primary diagnosis
SELECT r.icb AS icb_code, ${icb_age_band} AS age_band, c.sex, r.imd_quintile,
       CAST(COUNT(*) AS BIGINT) AS emergency_admissions,
       CAST(SUM(CASE WHEN ${acsc} THEN 1 ELSE 0 END) AS BIGINT) AS acsc_admissions
FROM cips_seq AS c
JOIN residence AS r ON c.lsoa11 = r.lsoa11
WHERE c.admidate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND c.admimeth IN (${emergency})
GROUP BY 1, 2, 3, 4

-- name: icb_patients output
-- per ICB of residence: the sum over its patients of the square of their emergency admissions in the quarter (and of
-- their ACSC admissions): the variance of admissions clustered in patients (a readmission is the same resident's
-- second admission), for the interval of the ICB's standardised ratio
SELECT p.icb_code, CAST(SUM(p.k * p.k) AS BIGINT) AS emergency_admissions_sq,
       CAST(SUM(p.a * p.a) AS BIGINT) AS acsc_admissions_sq
FROM (SELECT r.icb AS icb_code, c.pid, COUNT(*) AS k, SUM(CASE WHEN ${acsc} THEN 1 ELSE 0 END) AS a
      FROM cips_seq AS c
      JOIN residence AS r ON c.lsoa11 = r.lsoa11
      WHERE c.admidate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND c.admimeth IN (${emergency})
      GROUP BY 1, 2) AS p
GROUP BY 1

-- name: icb_unmatched output
-- emergency admissions in the quarter whose residence is missing or not in the lookup (left out of the ICB figures)
SELECT CAST(COUNT(*) AS BIGINT) AS emergency_admissions
FROM cips_seq AS c
LEFT JOIN residence AS r ON c.lsoa11 = r.lsoa11
WHERE c.admidate BETWEEN DATE '${qstart}' AND DATE '${qend}' AND c.admimeth IN (${emergency}) AND r.icb IS NULL
