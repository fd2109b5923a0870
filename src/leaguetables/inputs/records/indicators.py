"""Provider and ICB-of-residence indicators from record-level HES-format data, written once (``indicators.sql``,
DuckDB's dialect) and run by DuckDB (the default) or Spark (the SQL transpiled by sqlglot).

The SQL produces whole-number counts only (``Indicators.counts``: one table per output section of the SQL); everything
else is computed from those counts in pandas/statsmodels, the same for every engine:

* ``observations`` — rows of the observations data contract (``quarter, trust_code, metric_id, numerator,
  denominator, value, category, suppressed``; :data:`PROVIDER_METRICS` and :data:`ICB_METRICS`), the ICB rows with
  the ICB's ODS code (``icb22_code_h``, e.g. ``QYG``) as ``trust_code``;
* ``strata`` — ICB × age band × sex × IMD quintile: events of each ICB metric and the resident population, for
  indirect and direct standardisation (``statistics.rates.isr`` / ``dsr``);
* ``icb_standardised`` — those standardised figures (ISR against England's stratum rates, DSR against England's
  population structure);
* ``shmi`` — the SHMI-style ratio per provider: observed and expected deaths, ratio, banding;
* ``shmi_models`` — one row per diagnosis group: spells, deaths, how the group was modelled.

Usage::

    from leaguetables.inputs.records.indicators import compute_indicators
    ind = compute_indicators("data/records", "2025-26-Q4")            # DuckDB
    ind = compute_indicators("data/records", "2025-26-Q4", engine=spark_session)   # Spark (pyspark SparkSession)
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlglot
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.tools.tools import add_constant

from leaguetables.errors import InputError
from leaguetables.inputs.contract import check_quarter, quarter_key

try:  # optional: the Spark engine (pyspark is in the test extra); typed Any, whether pyspark is installed or not
    SparkSession: Any = importlib.import_module("pyspark.sql").SparkSession
except ImportError:  # pragma: no cover - DuckDB is the default engine
    SparkSession = None
from leaguetables.inputs.records.contract import Records, load_records
from leaguetables.inputs.records.settings import RecordSettings, load_record_settings
from leaguetables.statistics import funnel, rates

SQL_FILE = Path(__file__).with_name("indicators.sql")
PROJECT_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
LOOKUP = Path("geography_population") / "lookup_lsoa11_sicbl22_icb22_ltla22.csv"
IMD = Path("trust_catchment_demographics") / "imd2019_lsoa11_ranks_deciles.csv"
LSOA_POPULATION = Path("geography_population") / "population20_lsoa11.csv"
LTLA_SEX_AGE = Path("geography_population") / "ons_mye2021_ltla21_sex_syoa_uk.csv"

# metric id: (output table, numerator column, denominator column, value = numerator/denominator × factor or None)
PROVIDER_METRICS: dict[str, tuple[str, str, str, float | None]] = {
    "rl_los_elective": ("los", "bed_days", "spells", 1.0),
    "rl_los_emergency": ("los", "bed_days", "spells", 1.0),
    "rl_preop_bed_days": ("preop", "preop_days", "spells", 1.0),
    "rl_day_case_rate": ("day_case", "day_cases", "spells", None),
    "rl_readmissions_30d": ("readmissions", "readmissions", "index_spells", None),
    "rl_op_follow_up_ratio": ("op_follow_up", "follow_ups", "first_attendances", 1.0),
    "rl_ae_12hr": ("ae_12hr", "over_12_hours", "attendances", None),
    "rl_shmi": ("mortality", "observed", "expected", 1.0),
}
# observed over expected (indirect standardisation; ``standardisation`` in the settings): metric id: (output table,
# events column, records column, case-mix strata, rows kept). Expected = Σ over the provider's strata of its records
# × the national events per record of the stratum; rl_shmi is O/E too, its expected deaths from the SHMI models.
RATIO_METRICS: dict[str, tuple[str, str, str, tuple[str, ...], dict[str, str]]] = {
    "rl_los_oe": ("los", "bed_days", "spells", ("diagnosis_group", "age_band"), {"admission": "emergency"}),
    "rl_daycase_oe": ("day_case", "day_cases", "spells", ("procedure",), {}),
    "rl_readmissions_oe": ("readmissions", "readmissions", "index_spells", ("age_band", "sex", "admission"), {}),
    "rl_followup_oe": ("op_follow_up", "follow_ups", "first_attendances", ("age_band",), {}),
    "rl_ae_12hr_oe": ("ae_12hr", "over_12_hours", "attendances", ("age_band",), {}),
}
# the column of a ratio metric's output holding Σ y² per stratum (y: a record's events; y² = y for a 0/1 event), for
# the variance of O of the ratios whose events are not a Poisson count (settings: standardisation.numerator_variance)
SQUARES = {
    "rl_los_oe": "bed_days_sq",
    "rl_daycase_oe": "day_cases",
    "rl_readmissions_oe": "readmissions",
    "rl_ae_12hr_oe": "over_12_hours",
}
# the column of a ratio metric's output holding the booked records per stratum, of which the records (the
# denominator of the national rate) are the attended share: the ratios whose expected count is itself random
# (settings: standardisation.expected_variance; :func:`expected_variance`)
BOOKED = {"rl_followup_oe": "booked_first_appointments"}
ICB_METRICS = {"icb_emergency_admissions": "emergency_admissions", "icb_acsc_admissions": "acsc_admissions"}
RATIO_COLUMNS = ["metric_id", "trust_code", "records", "observed", "expected", "ratio", "variance"]
OBSERVATION_COLUMNS = [
    "quarter",
    "trust_code",
    "metric_id",
    "numerator",
    "denominator",
    "value",
    "category",
    "suppressed",
    "numerator_variance",
]
SHMI_BANDS = {1: "higher than expected", 2: "as expected", 3: "lower than expected"}
INFANT = 7001  # HES age codes 7001-7007 (under one year) count as age 0


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # "view", "table" or "output"
    sql: str
    once: bool = False  # an output that does not read the episodes: computed in the first patient bucket only; a
    # table: made before the patient buckets and kept for all of them
    bucketed: bool = False  # a "once" table made only when the run has more than one patient bucket

    @property
    def counts(self) -> list[str]:
        """The output's count columns (``CAST(... AS BIGINT) AS name``); the other columns are its keys."""
        return re.findall(r"AS BIGINT\)\s+AS\s+(\w+)", self.sql)


EPISODES_PER_BUCKET = 2_500_000  # patient buckets of about this many episodes: the grouping stays in memory


@dataclass
class Indicators:
    quarter: str
    counts: dict[str, pd.DataFrame]
    observations: pd.DataFrame
    strata: pd.DataFrame
    icb_standardised: pd.DataFrame
    ratios: pd.DataFrame
    shmi: pd.DataFrame
    shmi_models: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------- SQL
def quarter_dates(quarter: str) -> tuple[dt.date, dt.date]:
    """First and last day of a financial-year quarter (``2025-26-Q4`` → 2026-01-01, 2026-03-31)."""
    year, q = quarter_key(check_quarter(quarter))
    start_month = {1: 4, 2: 7, 3: 10, 4: 1}[q]
    start_year = year + (1 if q == 4 else 0)
    start = dt.date(start_year, start_month, 1)
    end_month = start_month + 3
    end = (dt.date(start_year + (end_month > 12), (end_month - 1) % 12 + 1, 1)) - dt.timedelta(days=1)
    return start, end


def _in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def prefix_match(column: str, prefixes: list[str]) -> str:
    """SQL: ``column`` starts with one of ``prefixes`` (grouped by length into IN lists; portable SQL)."""
    by_len: dict[int, list[str]] = {}
    for p in sorted(set(prefixes)):
        by_len.setdefault(len(p), []).append(p)
    parts = [f"substr({column}, 1, {n}) IN ({_in(ps)})" for n, ps in sorted(by_len.items())]
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def band_labels(bounds: list[int]) -> list[str]:
    labels = [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(bounds, bounds[1:])]
    return labels + [f"{bounds[-1]}+"]


def age_band_case(column: str, bounds: list[int]) -> str:
    labels = band_labels(bounds)
    whens = " ".join(f"WHEN {column} < {hi} THEN '{lab}'" for hi, lab in zip(bounds[1:], labels))
    return f"CASE {whens} ELSE '{labels[-1]}' END"


def diagnosis_group_case(column: str, settings: RecordSettings) -> str:
    whens = " ".join(
        f"WHEN substr({column}, 1, 3) BETWEEN '{g.from_}' AND '{g.to}' THEN '{g.id}'"
        for g in settings.mortality.diagnosis_groups
    )
    return f"CASE {whens} ELSE 'other' END"


def basket_procedure_case(column: str, settings: RecordSettings) -> str:
    """SQL: the basket procedure (its name in the settings) whose OPCS-4 prefixes ``column`` matches (first match)."""
    whens = " ".join(f"WHEN {prefix_match(column, p.opcs)} THEN {_in([p.name])}" for p in settings.day_case.procedures)
    return f"CASE {whens} ELSE 'other' END"


def patient_filter(bucket: int, buckets: int) -> str:
    """SQL: the episode's patient is in ``bucket`` of ``buckets`` (by a hash of PSEUDO_HESID; any hash will do, so
    each engine uses its own: the sums over the buckets do not depend on it)."""
    if buckets <= 1:
        return "TRUE"
    return f"((hash(PSEUDO_HESID) % {buckets}) + {buckets}) % {buckets} = {bucket}"


def render_steps(
    settings: RecordSettings, quarter: str, sql_text: str | None = None, bucket: tuple[int, int] = (0, 1)
) -> list[Step]:
    """The SQL steps of ``indicators.sql`` with the settings, the quarter and the patient bucket (``(index,
    buckets)``) filled in (DuckDB dialect)."""
    c = settings.codes
    qstart, qend = quarter_dates(quarter)
    excluded = prefix_match("diag", settings.readmissions.exclude_diagnosis_prefixes)
    bands = settings.standardisation.age_bands
    los_classpat = (
        c.ordinary_classpat
        if settings.length_of_stay.classpat == "ordinary"
        else c.ordinary_classpat + c.day_case_classpat + c.regular_attender_classpat + c.maternity_classpat
    )
    patients = patient_filter(*bucket)
    values = {
        "patients": patients,
        # the episodes the spells read: one bucket's rows of the quarter's patients' episodes, read once for every
        # bucket when there are several (quarter_episodes), else straight from the contract view
        "episodes": (
            f"quarter_episodes WHERE {patients}"
            if bucket[1] > 1
            else "apc WHERE PSEUDO_HESID IN (SELECT PSEUDO_HESID FROM quarter_patients)"
        ),
        "qstart": qstart.isoformat(),
        "qend": qend.isoformat(),
        "elective": _in(c.elective_admimeth),
        "emergency": _in(c.emergency_admimeth),
        "maternity_admimeth": _in(c.maternity_admimeth),
        "transfer": _in(c.transfer_admimeth),
        "died": _in(c.died_dismeth),
        "stillbirth": _in(c.stillbirth_dismeth),
        "ordinary": _in(c.ordinary_classpat),
        "day_case": _in(c.day_case_classpat),
        "regular": _in(c.regular_attender_classpat),
        "maternity_classpat": _in(c.maternity_classpat),
        "los_classpat": _in(los_classpat),
        "op_attended": _in(c.op_attended),
        "op_booked": _in(c.op_booked),
        "op_first": _in(c.op_first),
        "op_follow_up": _in(c.op_follow_up),
        "ae_type1": _in(c.ae_type1),
        "gap": str(settings.spells.transfer_gap_days),
        "readmit_last_day": str(settings.readmissions.window_days - 1),
        "readmit_excluded": excluded.replace("diag", "c.diag"),
        "index_excluded": excluded,
        "post_days": str(settings.mortality.post_discharge_days),
        "lookback": str(settings.mortality.comorbidity_lookback_days),
        "long_wait": str(settings.ae.long_wait_minutes),
        "in_basket": prefix_match("opertn", settings.day_case.prefixes),
        "acsc": prefix_match("c.diag", settings.icb.acsc_prefixes),
        "diagnosis_group": diagnosis_group_case("diag", settings),
        "basket_procedure": basket_procedure_case("opertn", settings),
        "shmi_age_band": age_band_case("age", settings.mortality.age_bands),
        "case_mix_age_band": age_band_case("age", bands),
        "op_age_band": age_band_case(f"CASE WHEN APPTAGE >= {INFANT} THEN 0 ELSE APPTAGE END", bands),
        "ae_age_band": age_band_case(f"CASE WHEN ARRIVALAGE >= {INFANT} THEN 0 ELSE ARRIVALAGE END", bands),
        "icb_age_band": age_band_case("c.age", settings.icb.age_bands),
    }
    text = Template(sql_text if sql_text is not None else SQL_FILE.read_text(encoding="utf-8")).substitute(values)
    steps = []
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        header, body = block.split("\n", 1)
        name, kind, *flags = header.split()
        sql = "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("--")).strip()
        steps.append(Step(name, kind, sql, once="once" in flags, bucketed="bucketed" in flags))
    return steps


def to_spark_sql(sql: str) -> str:
    """One step of ``indicators.sql`` in Spark SQL (sqlglot; it also makes DuckDB's NULL ordering explicit)."""
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


# ---------------------------------------------------------------------------------------------------------- engines
class DuckDBEngine:
    """Runs the steps in a DuckDB connection holding the contract views (``Records.con``)."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(name, frame)

    def run(self, steps: list[Step]) -> dict[str, pd.DataFrame]:
        out = {}
        for s in steps:
            if s.kind == "output":
                out[s.name] = self.con.execute(s.sql).df()
            else:  # TEMP tables: one patient bucket's spells fit in memory uncompressed (no compression to pay);
                # under memory pressure DuckDB spills them to its temp_directory
                kind = "TEMP TABLE" if s.kind == "table" else "TEMP VIEW"
                self.con.execute(f"CREATE OR REPLACE {kind} {s.name} AS {s.sql}")
        return out

    def start(self, steps: list[Step], pool: ThreadPoolExecutor) -> Future[dict[str, pd.DataFrame]]:
        """Run outputs that read only the contract views on a second cursor in ``pool``, while this connection runs
        the patient buckets (DuckDB releases the GIL: their queries and the buckets' Python share the cores)."""
        cursor = self.con.cursor()

        def outputs() -> dict[str, pd.DataFrame]:
            try:
                return {s.name: cursor.execute(s.sql).df() for s in steps}
            finally:
                cursor.close()

        return pool.submit(outputs)

    def scalar(self, sql: str) -> Any:
        return self.con.execute(sql).fetchall()[0][0]

    def drop(self, steps: list[Step]) -> None:
        for s in reversed(steps):
            if s.kind != "output":
                self.con.execute(f"DROP {'TABLE' if s.kind == 'table' else 'VIEW'} IF EXISTS {s.name}")


class SparkEngine:
    """Runs the steps (transpiled to Spark SQL) in a SparkSession; the contract tables are registered from DuckDB."""

    name = "spark"

    def __init__(self, spark: Any):
        self.spark = spark
        self._cached: dict[str, Any] = {}

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).createOrReplaceTempView(name)

    def run(self, steps: list[Step]) -> dict[str, pd.DataFrame]:
        out = {}
        for s in steps:
            df = self.spark.sql(to_spark_sql(s.sql))
            if s.kind == "output":
                out[s.name] = df.toPandas()
            else:
                if s.kind == "table":
                    df = df.cache()
                    self._cached[s.name] = df
                df.createOrReplaceTempView(s.name)
        return out

    def scalar(self, sql: str) -> Any:
        return self.spark.sql(to_spark_sql(sql)).collect()[0][0]

    def drop(self, steps: list[Step]) -> None:
        for s in steps:
            if s.name in self._cached:
                self._cached.pop(s.name).unpersist()
            if s.kind != "output":
                self.spark.catalog.dropTempView(s.name)


SPARK_LOCAL_CONFIG = {
    # small extracts on a small machine: one shuffle partition, no adaptive re-planning, no code generation (compiling
    # every query costs more than running it), no web UI, dates in UTC
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def local_spark_session(threads: int = 1, app: str = "leaguetables-records") -> Any:
    """A local-mode SparkSession configured for small extracts (pyspark and Java needed)."""
    if SparkSession is None:
        raise InputError("the Spark engine needs pyspark (pip install -e .[test], or pip install pyspark) and Java")
    builder = SparkSession.builder.master(f"local[{threads}]").appName(app)
    for key, value in SPARK_LOCAL_CONFIG.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _spark_tables(records: Records, engine: SparkEngine) -> None:
    """The validated contract views, copied from DuckDB into Spark (dates as dates, counts as 64-bit integers)."""
    for name in records.datasets:
        table = records.con.execute(f"SELECT * EXCLUDE (source_file, source_row) FROM {name}").to_arrow_table()
        engine.spark.createDataFrame(table).createOrReplaceTempView(name)


# -------------------------------------------------------------------------------------------------------- geography
def residence_lookup(real: Path = DEFAULT_REAL_DATA, con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """LSOA 2011 → ICB (ODS code, ``icb22_code_h``) and IMD 2019 quintile (1 most deprived … 5 least)."""
    lookup, imd = Path(real) / LOOKUP, Path(real) / IMD
    for p in (lookup, imd):
        if not p.is_file():
            raise InputError("residence lookup not found (give the real-data folder with --real)", file=str(p))
    con = con or duckdb.connect()
    return con.execute(
        f"SELECT l.lsoa11_code AS lsoa11, l.icb22_code_h AS icb, l.icb22_name AS icb_name, "
        f"CAST(CAST(ceil(CAST(i.IMD_decile AS DOUBLE) / 2) AS INTEGER) AS VARCHAR) AS imd_quintile "
        f"FROM read_csv('{lookup}', all_varchar=true) AS l "
        f"LEFT JOIN read_csv('{imd}', all_varchar=true) AS i ON l.lsoa11_code = i.lsoa11_code "
        f"ORDER BY 1"
    ).df()


def population_strata(
    settings: RecordSettings, real: Path = DEFAULT_REAL_DATA, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """Resident population by ICB × age band × sex × IMD quintile: ONS mid-2020 LSOA populations by single year of
    age (persons), split by sex with the local authority's mid-2021 sex ratio at that age (ONS publishes no LSOA
    estimates by sex and age in the shared data)."""
    con = con or duckdb.connect()
    res = residence_lookup(real, con)
    con.register("_residence", res)
    pop, mye = Path(real) / LSOA_POPULATION, Path(real) / LTLA_SEX_AGE
    ages = ", ".join(f'"{a}"' for a in [*map(str, range(90)), "90+"])
    band = age_band_case("p.age", settings.icb.age_bands)
    frame = con.execute(f"""
        WITH lsoa AS (
            SELECT lsoa11_code AS lsoa11,
                   CASE WHEN age_label = '90+' THEN 90 ELSE CAST(age_label AS INTEGER) END AS age,
                   CAST(persons AS DOUBLE) AS persons
            FROM (UNPIVOT (SELECT * FROM read_csv('{pop}', all_varchar=true)) ON {ages}
                  INTO NAME age_label VALUE persons)),
        ratio AS (
            SELECT ladcode21 AS ltla, LEAST(CAST(age AS INTEGER), 90) AS age, sex,
                   SUM(CAST(population_2021 AS DOUBLE)) AS n
            FROM read_csv('{mye}', all_varchar=true) GROUP BY 1, 2, 3),
        share AS (SELECT ltla, age, sex, n / SUM(n) OVER (PARTITION BY ltla, age) AS share FROM ratio),
        nat AS (SELECT age, sex, SUM(n) AS n FROM ratio GROUP BY age, sex),
        national AS (SELECT age, sex, n / SUM(n) OVER (PARTITION BY age) AS share FROM nat),
        lk AS (SELECT r.lsoa11, r.icb, r.imd_quintile, l.ltla22_code AS ltla
               FROM _residence AS r JOIN read_csv('{Path(real) / LOOKUP}', all_varchar=true) AS l
               ON r.lsoa11 = l.lsoa11_code)
        SELECT lk.icb AS icb_code, {band} AS age_band, n.sex, lk.imd_quintile,
               SUM(p.persons * COALESCE(s.share, n.share)) AS population
        FROM lsoa AS p JOIN lk ON p.lsoa11 = lk.lsoa11
        JOIN national AS n ON n.age = p.age
        LEFT JOIN share AS s ON s.ltla = lk.ltla AND s.age = p.age AND s.sex = n.sex
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""").df()
    con.unregister("_residence")
    return frame


def folder_geography(folder: Path, settings: RecordSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Residence lookup and population strata from a geography folder written by the synthetic generator
    (``lsoa_icb.csv``: LSOA11, icb_code, imd_quintile; ``population.csv``: icb_code, age, sex, imd_quintile,
    population by single year of age), whose ICBs are fictional."""
    lsoa, pop = Path(folder) / "lsoa_icb.csv", Path(folder) / "population.csv"
    for p in (lsoa, pop):
        if not p.is_file():
            raise InputError("geography file not found", file=str(p))
    con = duckdb.connect()
    residence = con.execute(
        f"SELECT LSOA11 AS lsoa11, icb_code AS icb, CAST(imd_quintile AS VARCHAR) AS imd_quintile "
        f"FROM read_csv('{lsoa}', all_varchar=true) ORDER BY 1"
    ).df()
    band = age_band_case("CAST(age AS INTEGER)", settings.icb.age_bands)
    population = con.execute(
        f"SELECT icb_code, {band} AS age_band, CAST(sex AS VARCHAR) AS sex, CAST(imd_quintile AS VARCHAR) AS "
        f"imd_quintile, SUM(CAST(population AS DOUBLE)) AS population FROM read_csv('{pop}', all_varchar=true) "
        f"GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ).df()
    return residence, population


def geography_for(
    root: Path | None, settings: RecordSettings, real: Path = DEFAULT_REAL_DATA, geography: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(residence lookup, population strata): from ``geography`` if given, else the record folder's own
    ``geography/`` (synthetic data) when it has one, else the real ONS lookup and populations under ``real``."""
    folder = geography if geography is not None else (Path(root) / "geography" if root is not None else None)
    if folder is not None and (geography is not None or (folder / "lsoa_icb.csv").is_file()):
        return folder_geography(folder, settings)
    return residence_lookup(real), population_strata(settings, real)


# -------------------------------------------------------------------------------------------------------- mortality
def _fit_group(frame: pd.DataFrame) -> np.ndarray:
    """Death probabilities of one diagnosis group's strata: a binomial GLM (logit) of deaths out of spells on age
    band, sex, admission method and the comorbidity proxy, fitted on the aggregated strata (terms with one level
    are left out)."""
    terms = [c for c in ("age_band", "sex", "admission", "prior_emergency") if frame[c].nunique() > 1]
    if not terms:
        X = np.ones((len(frame), 1))
    else:
        X = pd.get_dummies(frame[terms].astype(str), drop_first=True, dtype=float)
        X = add_constant(X.to_numpy(), has_constant="add")
    y = np.column_stack([frame["deaths"].to_numpy(float), (frame["spells"] - frame["deaths"]).to_numpy(float)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # strata without deaths drive coefficients towards -inf: predictions stay right
        result = GLM(y, X, family=families.Binomial()).fit(maxiter=100)
    return np.clip(np.asarray(result.predict(X), dtype=float), 0.0, 1.0)


COVARIATES = ["age_band", "sex", "admission", "prior_emergency"]


def shmi_expected(strata: pd.DataFrame, min_spells: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected deaths per stratum and one row per modelled diagnosis group. Each group's model is fitted on its
    covariate cells (the strata summed over providers: at most bands × sexes × methods × 2 rows, whatever the
    number of records); groups with fewer than ``min_spells`` spells are pooled into "other"."""
    df = strata.copy()
    size = df.groupby("diagnosis_group")["spells"].transform("sum")
    df["model_group"] = np.where(size >= min_spells, df["diagnosis_group"], "other")
    cells = df.groupby(["model_group", *COVARIATES], as_index=False)[["spells", "deaths"]].sum()
    cells["p"] = 0.0
    rows = []
    for group, idx in sorted(cells.groupby("model_group").groups.items()):
        sub = cells.loc[idx]
        deaths, spells = int(sub["deaths"].sum()), int(sub["spells"].sum())
        if 0 < deaths < spells:
            cells.loc[idx, "p"] = _fit_group(sub)
            how = "logistic model"
        else:
            cells.loc[idx, "p"] = deaths / spells if spells else 0.0
            how = "no deaths" if deaths == 0 else "every spell a death"
        rows.append({"model_group": group, "cells": len(sub), "spells": spells, "deaths": deaths, "model": how})
    df = df.merge(cells[["model_group", *COVARIATES, "p"]], on=["model_group", *COVARIATES], how="left")
    df["expected"] = df["spells"] * df["p"]
    return df, pd.DataFrame(rows, columns=["model_group", "cells", "spells", "deaths", "model"])


def shmi_table(strata: pd.DataFrame, settings: RecordSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per provider: observed deaths, expected deaths, SHMI = O/E, its banding (95% overdispersion-adjusted
    limits of the SHMI funnel, ``funnel.spiegelhalter`` with the SHMI method) and, when ``rl_shmi`` is in
    ``standardisation.numerator_variance``, the variance of O: deaths are 0/1 outcomes, so Σ (y − r·p)² over the
    spells (:func:`residual_variance` with the models' death probabilities p), about the binomial Σ p(1 − p) —
    below the Poisson Σ p, the more so the higher the death rates (missing otherwise: O taken as Poisson)."""
    cols = ["trust_code", "spells", "observed", "expected", "ratio", "band", "banding", "variance"]
    if strata.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["model_group", "cells", "spells", "deaths", "model"])
    df, models = shmi_expected(strata, settings.mortality.min_spells_per_group)
    per = (
        df.groupby("trust_code")
        .agg(spells=("spells", "sum"), observed=("deaths", "sum"), expected=("expected", "sum"))
        .reset_index()
        .sort_values("trust_code")
    )
    per["ratio"] = per["observed"] / per["expected"].where(per["expected"] > 0)
    per["variance"] = np.nan
    if "rl_shmi" in settings.standardisation.numerator_variance:
        v = residual_variance(df, "deaths", "spells", "deaths", df["p"])
        per["variance"] = per["trust_code"].map(v).astype(float)
    per["band"] = pd.array([pd.NA] * len(per), dtype="Int64")
    ok = per["expected"].round(2) > 0
    if ok.sum() >= 3:
        res = funnel.spiegelhalter(
            per.loc[ok, "observed"].to_numpy(float),
            per.loc[ok, "expected"].to_numpy(float),
            data_type="SR",
            sr_method="SHMI",
        )
        flags = res.flags(settings.mortality.banding_confidence, adjusted=True)
        band = np.where(flags["high"].to_numpy(bool), 1, np.where(flags["low"].to_numpy(bool), 3, 2))
        per.loc[ok, "band"] = band
    per["banding"] = per["band"].map(SHMI_BANDS).astype(object)
    return per[cols].reset_index(drop=True), models


# ------------------------------------------------------------------------------------------------------ observations
def _provider_totals(table: pd.DataFrame, metric: str, num: str, den: str) -> pd.DataFrame:
    """Per provider: the sums of ``num`` and ``den`` over its strata (length of stay: the metric's admission type)."""
    if "admission" in table.columns and metric.startswith("rl_los_"):
        table = table[table["admission"] == metric.rsplit("_", 1)[1]]
    return table.groupby("trust_code", as_index=False)[[num, den]].sum().sort_values("trust_code")


def _rows(quarter: str, codes, metric: str, n, d, value, category=None, variance=np.nan) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "quarter": quarter,
            "trust_code": np.asarray(codes, dtype=str),
            "metric_id": metric,
            "numerator": np.asarray(n, float),
            "denominator": np.asarray(d, float),
            "value": np.asarray(value, float),
            "category": category,
            "suppressed": False,
            "numerator_variance": np.broadcast_to(np.asarray(variance, float), (len(codes),)),
        }
    )


def _observation_rows(
    quarter: str, counts: dict[str, pd.DataFrame], shmi: pd.DataFrame, ratios: pd.DataFrame
) -> pd.DataFrame:
    """Provider rows: the crude metrics (:data:`PROVIDER_METRICS`) and the observed-over-expected ratios."""
    parts = []
    for metric, (table, num, den, factor) in PROVIDER_METRICS.items():
        if table == "mortality":
            t = shmi
        else:
            t = _provider_totals(counts[table], metric, num, den)
        if t.empty:
            continue
        n, d = t[num].to_numpy(float), t[den].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(d > 0, n / d, np.nan) * factor if factor is not None else np.full(len(t), np.nan)
        category, variance = (t["banding"].to_numpy(object), t["variance"]) if table == "mortality" else (None, np.nan)
        parts.append(_rows(quarter, t["trust_code"], metric, n, d, value, category, variance))
    for metric, r in ratios[ratios["metric_id"].isin(list(RATIO_METRICS))].groupby("metric_id"):
        parts.append(
            _rows(quarter, r["trust_code"], str(metric), r["observed"], r["expected"], r["ratio"], None, r["variance"])
        )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OBSERVATION_COLUMNS)
    return frame[OBSERVATION_COLUMNS]


def residual_variance(t: pd.DataFrame, events: str, records: str, squares: str, rate: pd.Series) -> pd.Series:
    """Per provider: the variance of O = Σ y over its records, estimated by Σ (y − r·m)² — m the national events per
    record of the record's stratum, r the provider's O/E, so r·m is the record's fitted mean — from the stratum sums
    (``Σ y² − 2·r·m·Σ y + (r·m)²·n``): the sandwich variance of O with E held fixed (E comes from the whole country).
    For a 0/1 event it is about the binomial variance at the fitted rates; for lengths of stay, the spread of the
    stays about their case-mix means (Σ y would treat bed days as a Poisson count; Σ y² adds Σ (r·m)², the squared
    means, and is about twice too large)."""
    frame = pd.DataFrame({"trust_code": t["trust_code"], "y": t[events], "n": t[records], "m": rate})
    frame["e"] = frame["n"] * frame["m"]
    sums = frame.groupby("trust_code")[["y", "e"]].transform("sum")
    fit = (sums["y"] / sums["e"].where(sums["e"] > 0)).fillna(0.0) * frame["m"]
    cell = t[squares] - 2 * fit * frame["y"] + fit**2 * frame["n"]
    return cell.groupby(frame["trust_code"]).sum().clip(lower=0.0)


def expected_variance(t: pd.DataFrame, records: str, booked: str, rate: pd.Series) -> pd.Series:
    """Per provider: the variance of its expected count E = Σ_s F_s·r_s when the records F_s of each stratum s are
    the attended share of N_s booked ones (a binomial count given N_s; r_s England's events per record of the
    stratum, held fixed: it comes from the whole country): V(E) = Σ_s r_s² · F_s (1 − F_s/N_s), the binomial
    variance at the provider's own attended share of the stratum (0 where F_s = N_s, or N_s = 0)."""
    f = t[records].astype(float)
    n = t[booked].astype(float)
    share = (f / n.where(n > 0)).fillna(1.0).clip(upper=1.0)
    cell = rate**2 * f * (1.0 - share)
    return cell.groupby(t["trust_code"]).sum()


def standardised_ratios(
    counts: dict[str, pd.DataFrame],
    shmi: pd.DataFrame,
    variance_metrics: Sequence[str] = (),
    random_expected: Sequence[str] = (),
) -> pd.DataFrame:
    """Per provider and ratio metric (:data:`RATIO_METRICS` and ``rl_shmi``): records, observed, expected (indirect
    standardisation against the national rate of every case-mix stratum; SHMI: the models' expected deaths), O/E and,
    for the metrics in ``variance_metrics`` (events that are not a Poisson count), the variance of O
    (:func:`residual_variance`; missing for the others: O is a Poisson count).

    For the metrics in ``random_expected`` (settings ``standardisation.expected_variance``: outpatient follow-ups,
    whose records, the attended first appointments, are a binomial share of the booked ones, :data:`BOOKED`) E is
    random too, and ``variance`` is the delta-method variance of O − θE at θ = O/E: V = V(O) + θ²·V(E), V(O) the
    residual variance for a metric also in ``variance_metrics`` else O (Poisson), V(E) :func:`expected_variance` (O
    and E independent: the follow-ups are counted given the booked first appointments). The scaled interval of O
    with this V (``rates.ratio(O, E, variance=V)``) is then, for large counts, θ ± 1.96 √V / E, the delta-method
    interval of the ratio of two independent counts, and keeps the Poisson skew for small ones. Fieller's (normal)
    interval, the θ with (O − θE)² ≤ z² (V(O) + θ² V(E)), differs from it by at most 2% of θ on the demo (44–661
    attended first appointments a trust; 1–3% narrower) and covers about as often (94.5% against 94.9% over 20
    generator seeds, benchmarks/results/record_level_intervals.md)."""
    parts = []
    for metric, (table, events, records, strata, keep) in RATIO_METRICS.items():
        t = counts[table]
        for column, level in keep.items():
            t = t[t[column] == level]
        if t.empty:
            continue
        national = t.groupby(list(strata))[[events, records]].transform("sum")
        rate = (national[events] / national[records].where(national[records] > 0)).fillna(0.0)
        t = t.assign(expected=t[records] * rate)
        per = t.groupby("trust_code", as_index=False).agg(
            records=(records, "sum"), observed=(events, "sum"), expected=("expected", "sum")
        )
        if metric in variance_metrics:
            v = residual_variance(t, events, records, SQUARES[metric], rate)
            per["variance"] = per["trust_code"].map(v).astype(float)
        if metric in random_expected:
            theta = (per["observed"] / per["expected"].where(per["expected"] > 0)).fillna(0.0)
            v_o = per["variance"] if metric in variance_metrics else per["observed"].astype(float)
            v_e = per["trust_code"].map(expected_variance(t, records, BOOKED[metric], rate)).astype(float)
            per["variance"] = v_o + theta**2 * v_e
        parts.append(per.assign(metric_id=metric))
    if not shmi.empty:
        parts.append(shmi.rename(columns={"spells": "records"}).assign(metric_id="rl_shmi"))
    if not parts:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["records"] = out["records"].astype("int64")
    out["observed"] = out["observed"].astype(float)
    out["ratio"] = out["observed"] / out["expected"].where(out["expected"] > 0)
    out["variance"] = out["variance"].astype(float) if "variance" in out.columns else np.nan
    return out[RATIO_COLUMNS].sort_values(["metric_id", "trust_code"]).reset_index(drop=True)


def _icb_rows(quarter: str, standardised: pd.DataFrame, per: float) -> pd.DataFrame:
    """ICB rows, indirectly standardised: numerator the admissions of the ICB's residents, denominator the
    standardised population (expected admissions ÷ England's crude rate), so that the rate numerator/denominator ×
    ``per`` is the ISR × England's crude rate per ``per`` (an indirectly standardised rate)."""
    parts = []
    for metric, g in standardised.groupby("metric_id", sort=True):
        crude = g["national_rate"].to_numpy(float)
        den = np.where(crude > 0, g["expected"].to_numpy(float) / crude, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = g["observed"].to_numpy(float) / den * per
        parts.append(_rows(quarter, g["icb_code"], str(metric), g["observed"], den, value, None, g["variance"]))
    return (
        pd.concat(parts, ignore_index=True)[OBSERVATION_COLUMNS] if parts else pd.DataFrame(columns=OBSERVATION_COLUMNS)
    )


def icb_strata(events: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    """Every ICB × age band × sex × IMD quintile stratum with its population and events (0 where none); events of
    unknown sex (no population) are kept as strata with population 0."""
    keys = ["icb_code", "age_band", "sex", "imd_quintile"]
    ev = events.copy()
    ev["imd_quintile"] = ev["imd_quintile"].astype(str)
    out = population.merge(ev, on=keys, how="outer")
    for c in ("emergency_admissions", "acsc_admissions"):
        out[c] = out[c].fillna(0).astype("int64")
    out["population"] = out["population"].fillna(0.0)
    return out.sort_values(keys).reset_index(drop=True)[
        keys + ["population", "emergency_admissions", "acsc_admissions"]
    ]


def standardise_icbs(
    strata: pd.DataFrame,
    per: float,
    patients: pd.DataFrame | None = None,
    variance_metrics: Sequence[str] = (),
) -> pd.DataFrame:
    """ISR by age band, sex and IMD quintile (England's stratum rates as the reference) and DSR by age band and sex
    (England's population as the standard: an ICB need not have residents in every deprivation quintile, which
    direct standardisation would need) of each ICB metric, with the project's limits (``statistics.rates``).

    For the metrics in ``variance_metrics`` the admissions are clustered in patients (a readmission is the same
    resident's second admission): the variance of O is Σ over patients of their admissions squared (``patients``,
    the ``icb_patients`` output), ``variance``, and the ISR's limits are the scaled Poisson ones
    (``rates.ratio(O, E, variance=V)``); for the others ``variance`` is missing and the limits are Poisson."""
    keys, direct = ["age_band", "sex", "imd_quintile"], ["age_band", "sex"]
    known = strata[strata["population"] > 0]
    standard = known.groupby(direct)["population"].sum()
    out = []
    for metric, col in ICB_METRICS.items():
        local = known.rename(columns={col: "x", "population": "n"})
        reference = local.groupby(keys)[["x", "n"]].sum().reset_index()
        isr = rates.isr(local, reference, on=keys, by="icb_code")
        expected = rates.expected_from_reference(local, reference, on=keys, by="icb_code")
        by_age_sex = local.groupby(["icb_code", *direct], as_index=False)[["x", "n"]].sum()
        dsr = rates.dsr(by_age_sex, by="icb_code", standard=standard, multiplier=per)
        observed = local.groupby("icb_code")["x"].sum().reindex(isr.index).to_numpy(float)
        variance = np.full(len(isr), np.nan)
        if metric in variance_metrics and patients is not None:
            variance = patients.set_index("icb_code")[f"{col}_sq"].reindex(isr.index).to_numpy(float)
            isr = rates.ratio(observed, expected.reindex(isr.index).to_numpy(float), variance=variance).set_index(
                isr.index
            )
        out.append(
            pd.DataFrame(
                {
                    "icb_code": isr.index.to_numpy(str),
                    "metric_id": metric,
                    "observed": observed,
                    "expected": expected.reindex(isr.index).to_numpy(float),
                    "national_rate": reference["x"].sum() / reference["n"].sum(),
                    "isr": isr["value"].to_numpy(float),
                    "isr_lower": isr["lower"].to_numpy(float),
                    "isr_upper": isr["upper"].to_numpy(float),
                    "dsr": dsr["value"].reindex(isr.index).to_numpy(float),
                    "dsr_lower": dsr["lower"].reindex(isr.index).to_numpy(float),
                    "dsr_upper": dsr["upper"].reindex(isr.index).to_numpy(float),
                    "variance": variance,
                }
            )
        )
    return pd.concat(out, ignore_index=True)


# ------------------------------------------------------------------------------------------------------------- run
def run_counts(
    records: Records,
    quarter: str,
    settings: RecordSettings,
    residence: pd.DataFrame,
    engine: Any = "duckdb",
    buckets: int | None = None,
) -> dict[str, pd.DataFrame]:
    """The SQL outputs (whole-number counts) on DuckDB (``engine="duckdb"``) or Spark (a ``SparkSession``), in
    ``buckets`` patient buckets (default: one per :data:`EPISODES_PER_BUCKET` episodes)."""
    if isinstance(engine, str):
        if engine != "duckdb":
            raise ValueError(f"engine must be 'duckdb' or a SparkSession, not {engine!r}")
        runner: DuckDBEngine | SparkEngine = DuckDBEngine(records.con)
    else:
        runner = SparkEngine(engine)
        _spark_tables(records, runner)
    runner.register("residence", residence[["lsoa11", "icb", "imd_quintile"]])
    all_steps = render_steps(settings, quarter)
    outputs = {s.name: s for s in all_steps if s.kind == "output"}
    shared = [s for s in all_steps if s.once and s.kind != "output" and not s.bucketed]
    # the outputs that do not read the episodes run beside the buckets when their views can be read from a second
    # cursor (Parquet: CSV tables are registered with the connection alone)
    detach = isinstance(runner, DuckDBEngine) and all(
        p.suffix == ".parquet" for files in records.files.values() for p in files
    )
    with ThreadPoolExecutor(1) as pool:
        aside = (
            runner.start([s for s in outputs.values() if s.once], pool)
            if isinstance(runner, DuckDBEngine) and detach
            else None
        )
        runner.run(shared)
        n = buckets if buckets is not None else _bucket_count(runner, records.rows.get("apc", 0))
        shared += [s for s in all_steps if s.bucketed and n > 1]
        runner.run([s for s in shared if s.bucketed])
        parts: dict[str, list[pd.DataFrame]] = {}
        for b in range(n):
            steps = [s for s in render_steps(settings, quarter, bucket=(b, n)) if s.kind == "output" or not s.once]
            steps = [s for s in steps if not s.once or (b == 0 and aside is None)]
            for name, frame in runner.run(steps).items():
                parts.setdefault(name, []).append(frame)
            runner.drop(steps)
        runner.drop(shared)
        if aside is not None:
            parts |= {name: [frame] for name, frame in aside.result().items()}
    return {k: normalise(_sum_buckets(parts[k], outputs[k].counts)) for k in outputs if k in parts}


def _bucket_count(runner: DuckDBEngine | SparkEngine, episodes: int) -> int:
    """Patient buckets of about :data:`EPISODES_PER_BUCKET` episodes of the patients the quarter's counts need
    (``quarter_patients``; counted only when the whole extract would need more than one bucket)."""
    if episodes > EPISODES_PER_BUCKET:
        episodes = int(runner.scalar("SELECT count(*) FROM apc WHERE PSEUDO_HESID IN (SELECT * FROM quarter_patients)"))
    return max(1, -(-episodes // EPISODES_PER_BUCKET))


def _sum_buckets(frames: list[pd.DataFrame], counts: list[str]) -> pd.DataFrame:
    """One output's counts summed over the patient buckets (grouped by its key columns)."""
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, ignore_index=True)
    keys = [c for c in frame.columns if c not in counts]
    if not keys:
        return frame[counts].sum().to_frame().T
    return frame.groupby(keys, as_index=False, dropna=False)[counts].sum()


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts as int64, text as str or None, rows sorted by every column: the engine-independent form of an output."""
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].fillna(0).astype("int64")
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out.sort_values(list(out.columns), na_position="first").reset_index(drop=True)


def indicators_from_counts(
    quarter: str, counts: dict[str, pd.DataFrame], settings: RecordSettings, population: pd.DataFrame
) -> Indicators:
    shmi, models = shmi_table(counts["mortality"], settings)
    ratios = standardised_ratios(
        counts, shmi, settings.standardisation.numerator_variance, settings.standardisation.expected_variance
    )
    strata = icb_strata(counts["icb_strata"], population)
    standardised = standardise_icbs(
        strata, settings.icb.per, counts.get("icb_patients"), settings.icb.numerator_variance
    )
    obs = pd.concat(
        [_observation_rows(quarter, counts, shmi, ratios), _icb_rows(quarter, standardised, settings.icb.per)],
        ignore_index=True,
    )
    obs = obs.sort_values(["metric_id", "trust_code"]).reset_index(drop=True)
    notes = []
    unmatched = int(counts["icb_unmatched"]["emergency_admissions"].sum())
    if unmatched:
        notes.append(
            f"{unmatched} emergency admissions have no residence in the LSOA lookup and are left out of the ICB figures"
        )
    return Indicators(
        quarter=quarter,
        counts=counts,
        observations=obs,
        strata=strata,
        icb_standardised=standardised,
        ratios=ratios,
        shmi=shmi,
        shmi_models=models,
        notes=notes,
    )


def compute_indicators(
    root: Path | str | Records,
    quarter: str,
    *,
    engine: Any = "duckdb",
    settings: str | Path | RecordSettings = "indicators",
    real: Path = DEFAULT_REAL_DATA,
    geography: Path | None = None,
) -> Indicators:
    """Every record-level indicator of ``quarter`` from the contract folders under ``root`` (or loaded ``Records``).

    ``engine``: "duckdb" (default) or a pyspark ``SparkSession``. Residence → ICB and IMD quintile, and the
    populations: :func:`geography_for` (``geography`` folder; else ``root/geography/`` when the synthetic generator
    wrote one; else the real ONS lookup and populations under ``real``, default ``../shared/data/real``).
    """
    check_quarter(quarter)
    cfg = settings if isinstance(settings, RecordSettings) else load_record_settings(settings)
    records = root if isinstance(root, Records) else load_records(root)
    residence, population = geography_for(records.root, cfg, real, geography)
    counts = run_counts(records, quarter, cfg, residence, engine)
    return indicators_from_counts(quarter, counts, cfg, population)
