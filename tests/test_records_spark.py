"""Spark parity: every record-level indicator, written once in ``indicators.sql`` and transpiled by sqlglot, gives on
Spark (local mode) exactly the count tables DuckDB gives on the same small extract — and so the same observations,
SHMI and ICB standardisation, which are computed from those counts alone.

One Spark session for the module (start-up is the slow part); ``make test`` installs pyspark (the test extra) and,
when missing, Java (Debian's ``openjdk-17-jre-headless``). Skips, saying why, only when no Java runtime is found.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from conftest import add_unwaited_cpu
from records_fixture import write_records

from leaguetables.inputs.records import indicators as ind
from leaguetables.inputs.records.contract import load_records
from leaguetables.inputs.records.settings import load_record_settings

Q = "2025-26-Q4"

if shutil.which("java") is None:
    pytest.skip(
        "no Java runtime: Spark cannot start (make test installs openjdk-17-jre-headless with apt-get)",
        allow_module_level=True,
    )
pytest.importorskip("pyspark", reason="pyspark is not installed (it is in the test extra: pip install -e .[test])")


# The driver JVM's own settings for a short test: the client compiler only (C2's compiler threads spend more CPU
# on a run of a minute than they save) and the serial collector (no parallel GC threads). Measured on the test's
# extract, 2 December 2026 (the JVM's CPU read from /proc before the session stopped; it is not a child pytest
# waits for, so the summary's CPU line did not count it): ~43 CPU-s with the defaults, ~27 with these. The JIT and
# the collector change how fast Spark runs, not what it computes: the parity claim is unchanged. (The summary's CPU
# line now counts the JVM: tests/conftest.py, add_unwaited_cpu.)
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@pytest.fixture(scope="module")
def spark():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ind.SPARK_LOCAL_CONFIG, "spark.driver.extraJavaOptions", JVM_OPTIONS)
        session = ind.local_spark_session(threads=1)
    assert JVM_OPTIONS in session.sparkContext.getConf().get("spark.driver.extraJavaOptions", "")
    yield session
    gateway = getattr(session.sparkContext, "_gateway", None)  # the JVM: the summary's CPU line counts it
    if getattr(gateway, "proc", None) is not None:
        add_unwaited_cpu(gateway.proc.pid)
    session.stop()


def test_spark_equals_duckdb(spark, tmp_path_factory):
    settings = load_record_settings()
    records = load_records(write_records(tmp_path_factory.mktemp("spark"), n_patients=400, seed=7))
    residence, population = ind.geography_for(records.root, settings)
    duck = ind.run_counts(records, Q, settings, residence)
    sparked = ind.run_counts(records, Q, settings, residence, engine=spark, buckets=2)  # Spark's own hash buckets
    assert list(sparked) == list(duck)
    for name in duck:
        pd.testing.assert_frame_equal(sparked[name], duck[name], obj=name)
    # the extract reaches every branch, so the equality is not between empty tables
    assert all(len(t) for t in duck.values())
    assert duck["readmissions"]["readmissions"].sum() > 0 and duck["mortality"]["deaths"].sum() > 0
    a = ind.indicators_from_counts(Q, duck, settings, population).observations
    b = ind.indicators_from_counts(Q, sparked, settings, population).observations
    pd.testing.assert_frame_equal(a, b)
