"""The up-to-date check of a rerun (src/leaguetables/run/uptodate.py): a published quarter is found unchanged only
when its manifest records this run's key and its files still have the recorded checksums; every other case is left
to the pipeline (the end-to-end no-op is in tests/test_rerun.py)."""

from __future__ import annotations

import json
from pathlib import Path

from leaguetables.config import file_sha256
from leaguetables.run import uptodate

QUARTER = "2025-26-Q4"


def _data(folder: Path) -> Path:
    folder.mkdir()
    for name in ("trusts.csv", "observations.csv", "demographics.csv", "status.csv"):
        (folder / name).write_text(f"{name}\n1\n", encoding="utf-8")
    return folder


def _publish(out: Path, key: str) -> Path:
    target = out / QUARTER
    (target / "tables").mkdir(parents=True)
    (target / "index.html").write_text("<p>report</p>\n", encoding="utf-8")
    (target / "tables" / "league_table.csv").write_text("trust_code\nA\n", encoding="utf-8")
    outputs = {p.relative_to(target).as_posix(): file_sha256(p) for p in sorted(target.rglob("*")) if p.is_file()}
    manifest = {"outputs": outputs, uptodate.FIELD: key, "timings_seconds": {"total": 1.0}}
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


def _key(data: Path, **changes) -> str:
    args = {"quarter": QUARTER, "source": "files", "data_dir": data, "metrics": None, "methodology": "nof-2025-26"}
    return uptodate.rerun_key(**{**args, "catalogue": "demo", **changes})


def test_unchanged_only_with_the_recorded_key_and_intact_files(tmp_path):
    """Same arguments and files: the same key, and the quarter is up to date. A changed input byte, another
    --metrics or methodology gives another key; a published file edited after publication, an unfinished publish
    (journal), a killed run's staging folder or a revisions table send the rerun through the pipeline."""
    data = _data(tmp_path / "data")
    out = tmp_path / "reports"
    key = _key(data)
    target = _publish(out, key)
    assert _key(data) == key
    assert uptodate.unchanged(out, QUARTER, key)
    assert _key(data, metrics=["cdiff"]) != key
    assert _key(data, methodology="nof-2026-27") != key
    obs = data / "observations.csv"
    obs.write_text(obs.read_text(encoding="utf-8").replace("1", "2"), encoding="utf-8")
    assert _key(data) != key, "an input changed: another key"
    assert not uptodate.unchanged(out, QUARTER, _key(data))

    page = target / "index.html"
    page.write_text("<p>edited</p>\n", encoding="utf-8")
    assert not uptodate.unchanged(out, QUARTER, key), "a published file changed since its manifest"
    page.write_text("<p>report</p>\n", encoding="utf-8")
    assert uptodate.unchanged(out, QUARTER, key)
    for leftover in (out / f".publishing-{QUARTER}.json", out / f".staging-{QUARTER}"):
        leftover.mkdir()
        assert not uptodate.unchanged(out, QUARTER, key), leftover.name
        leftover.rmdir()
    (target / "tables" / "revisions.csv").write_text("quarter\n", encoding="utf-8")
    assert not uptodate.unchanged(out, QUARTER, key), "a revised quarter"


def test_no_manifest_or_no_key_is_not_up_to_date(tmp_path):
    """A quarter never published, or published by a version that recorded no key: the pipeline decides."""
    data = _data(tmp_path / "data")
    out = tmp_path / "reports"
    key = _key(data)
    assert not uptodate.unchanged(out, QUARTER, key)
    target = _publish(out, key)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    del manifest[uptodate.FIELD]
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert not uptodate.unchanged(out, QUARTER, key)
