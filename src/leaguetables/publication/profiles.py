"""Trust profiles: one static page per trust (``trusts/<code>.html``), linked from every league-table row.

Built from the computed tables of the run with one Jinja2 template (``templates/pages/profile.html.j2``), not
one notebook per trust: the tables are indexed once, then each page is a dictionary of formatted strings and
a render. Every page has a unique ``<title>``, one H1, the report's header, skip link and footer, and only
relative links (to the report, the methodology and other profiles).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from markupsafe import Markup

from leaguetables.config import TRUST_TYPE_LABELS, TRUST_TYPE_PLURAL
from leaguetables.inputs.contract import quarter_key, quarter_label, quarter_period
from leaguetables.publication import pages
from leaguetables.publication.report import (
    REVISED,
    Cell,
    ReportData,
    _missing,
    active_groupings,
    area_href,
    fmt,
    metric_href,
    money,
    movement_text,
    profile_file,
    site_label,
    slug,
    source_notice,
    thresholds_notice,
)
from leaguetables.statistics.peers import peer_groups

DEMOGRAPHICS = (
    ("population", "Catchment population", "count"),
    ("share_65plus", "Aged 65 and over", "share"),
    ("share_85plus", "Aged 85 and over", "share"),
    ("imd_score", "Deprivation (IMD average score)", "score"),
    ("rural_share", "Living in rural areas", "share"),
    ("ethnic_minority_share", "From ethnic minority groups", "share"),
)
METRIC_COLUMNS = [
    ("Metric", False),
    ("Value (as reported)", True),
    ("95% confidence interval", True),
    ("Score (1 to 4)", True),
    ("Funnel plot band", False),
    ("Pooled value, all trusts of this type", True),
    ("Peer median", True),
    ("Rank among peers", True),
    ("Trend", False),
]
PRODUCTIVITY_COLUMNS = [
    ("Metric", False),
    ("Value this quarter (as in the metrics table)", True),
    ("Basis of the comparison", False),
    ("Value compared", True),
    ("Best-quartile level", True),
    ("Shortfall", True),
    ("Resource released a year", True),
    ("Priced at", False),
    ("Opportunity a year", True),
]


class Spark(NamedTuple):
    """A sparkline as plain values, drawn by the ``spark`` macro (``templates/pages/macros.html.j2``): its text
    alternative, size, the point lists of its line segments and the latest point."""

    alt: str
    width: int
    height: int
    lines: list[str]
    cx: str
    cy: str


def sparkline(
    values: list[float], labels: list[str], name: str, decimals: int, unit: str, width: int = 96, height: int = 24
) -> Spark | str:
    """A small inline SVG line of a trust's values over the quarters, with a text alternative ("[x]" with fewer
    than two values).

    Gaps (suppressed or missing quarters) break the line; the latest point is a dot. The y axis spans the
    trust's own range, so the line shows the shape of the trend, not its size: the figures are in the trend table.
    """
    v = np.asarray(values, dtype=float)
    have = ~np.isnan(v)
    if have.sum() < 2:
        return "[x]"
    pad = 3.0
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    span = hi - lo
    xs = pad + np.arange(len(v)) * (width - 2 * pad) / max(len(v) - 1, 1)
    ys = np.where(have, height / 2.0 if span == 0 else pad + (hi - v) * (height - 2 * pad) / (span or 1), np.nan)
    lines: list[str] = []
    run: list[str] = []
    for x, y in zip(xs, ys):
        if np.isnan(y):
            if len(run) > 1:
                lines.append(" ".join(run))
            run = []
        else:
            run.append(f"{x:.1f},{y:.1f}")
    if len(run) > 1:
        lines.append(" ".join(run))
    idx = np.flatnonzero(have)
    first, last = idx[0], idx[-1]
    alt = (
        f"Trend of {name}: {v[first]:,.{decimals}f} in {labels[first]}, {v[last]:,.{decimals}f} in "
        f"{labels[last]} ({unit}); lowest {lo:,.{decimals}f}, highest {hi:,.{decimals}f}."
    )
    return Spark(alt, width, height, lines, f"{xs[last]:.1f}", f"{ys[last]:.1f}")


def _num(metric, value) -> str:
    if metric.statistic == "bracket":
        return "[z]"
    return fmt(value, metric.decimals)


class ProfileIndex:
    """What the profiles read that the league does not change — the metric tables, their history, the productivity
    opportunity, the register, demographics and peers —, indexed once as plain dictionaries (one page is a few
    hundred look-ups, far cheaper than pandas row access). The pipeline builds it while the league notebook runs
    (:func:`leaguetables.publication.documents.early_data`, kept as :attr:`ReportData.profile_index`)."""

    def __init__(self, data: ReportData):
        self.metrics = data.metrics_run
        self.tables = {
            m.id: data.metric_data[m.id]["table"].set_index("trust_code").to_dict("index") for m in self.metrics
        }
        quarters = set()
        self.history = {}
        for m in self.metrics:
            h = data.metric_data[m.id].get("history")
            if h is None or h.empty:
                continue
            quarters |= set(h["quarter"])
        self.quarters = sorted(quarters, key=quarter_key)
        for m in self.metrics:
            h = data.metric_data[m.id].get("history")
            if h is None or h.empty:
                continue
            hv = h.pivot_table(
                index="trust_code", columns="quarter", values="value", aggfunc="first", dropna=False
            ).reindex(columns=self.quarters)
            hs = h.pivot(index="trust_code", columns="quarter", values="status").reindex(columns=self.quarters)
            self.history[m.id] = (dict(zip(hv.index, hv.to_numpy(float))), dict(zip(hs.index, hs.to_numpy(object))))
        self.quarter_labels = [quarter_label(q) for q in self.quarters]
        self.spc, self.spc_quarters = data.spc
        opp = data.productivity
        self.opp: dict[str, list] = {}
        if len(opp):
            order = {m.id: i for i, m in enumerate(data.catalogue.metrics)}
            opp = opp.iloc[opp["metric_id"].map(order).argsort(kind="mergesort")]
            for r in opp.itertuples(index=False):
                self.opp.setdefault(r.trust_code, []).append(r)
        trusts = data.inputs.trusts
        self.trusts = trusts.set_index("trust_code").to_dict("index")
        self.names = dict(zip(trusts["trust_code"], trusts["trust_name"]))
        demo = data.inputs.demographics
        self.demo = demo.set_index("trust_code").to_dict("index")
        self.demo_cols = [c for c, _, _ in DEMOGRAPHICS if c in demo.columns]
        self.demo_median = (
            demo.merge(trusts[["trust_code", "trust_type"]], on="trust_code")
            .groupby("trust_type")[self.demo_cols]
            .median()
            .to_dict("index")
        )
        self.peer_error = None
        try:
            self.peers = peer_groups(demo, trusts, data.methodology)
        except Exception as exc:  # noqa: BLE001 - a page without peers is still a page; the reason is kept
            self.peers, self.peer_error = {}, str(exc)
        self.domains: list[str] = []
        for m in data.catalogue.metrics:
            if m.domain not in self.domains:
                self.domains.append(m.domain)


class ProfileBuilder(ProfileIndex):
    """Indexes the run's tables once (the league's, and :class:`ProfileIndex` unless the data hold one made early
    from the same metric results); :meth:`context` then gives one trust's page as plain values."""

    def __init__(self, data: ReportData):
        early = data.profile_index
        if early is None:
            super().__init__(data)
        else:
            vars(self).update(vars(early))
        self.data = data
        self.quarter = data.quarter
        lt = data.league.table
        self.league = lt.set_index("trust_code").to_dict("index")
        self.rank_counts = lt.groupby(["trust_type", "rank"]).size().to_dict()
        mv = data.movement if data.movement is not None else pd.DataFrame()
        self.movement = {r.trust_code: r for r in mv.itertuples(index=False)} if len(mv) else {}
        self.provenance = data.provenance

    # ------------------------------------------------------------------------------------------------ parts
    def _cards(self, code: str, lt) -> tuple[list[dict], list[str]]:
        seg, rank_label = int(lt["segment"]), str(lt["rank_label"])
        rl = self.data.revised_league
        r = lambda col: REVISED if (code, col) in rl else ""  # noqa: E731
        cards = [
            {
                "label": "Segment",
                "value": f"{seg}{r('Segment')}",
                "detail": (
                    f"moved from segment {int(lt['unadjusted_segment'])} by the financial override"
                    if bool(lt["financial_override"])
                    else ("Provider Improvement Programme" if seg == 5 else "1 is the highest-performing group")
                ),
            },
            {
                "label": "Rank",
                "value": f"{rank_label}{r('Rank')}",
                "detail": (
                    f"rank interval {lt['rank_interval_lower']:.0f} to {lt['rank_interval_upper']:.0f}"
                    f"{r('Rank interval')}; NHS England's likely range "
                    if not _missing(lt.get("rank_interval_lower"))
                    else "NHS England's likely range "
                )
                + f"{lt['rank_lower']:.0f} to {lt['rank_upper']:.0f}{r('NHS England likely range of rank')}",
            },
            {
                "label": "Average metric score",
                "value": f"{fmt(lt['average_score'], 2)}{r('Average score')}",
                "detail": f"NHS England's likely range {lt['average_lower']:.2f} to {lt['average_upper']:.2f}"
                f"{r('NHS England likely range of average')}; from {int(lt['n_scored'])} scored metrics",
            },
        ]
        prev = quarter_label(self.data.previous)
        mv = self.movement.get(code)
        if mv is not None:
            detail = getattr(mv, "movement_label", None)
            cards.append(
                {
                    "label": f"Since {prev}",
                    "value": _short_move(mv),
                    "detail": detail if isinstance(detail, str) and detail else movement_text(mv),
                }
            )
        elif self.movement:
            cards.append({"label": f"Since {prev}", "value": "new", "detail": "not in last quarter's table"})
        plural = TRUST_TYPE_PLURAL[lt["trust_type"]].lower()
        tied = self.rank_counts.get((lt["trust_type"], lt["rank"]), 1) - 1
        shared = f", shared with {tied} other trust{'s' if tied > 1 else ''}" if tied else ""
        if not _missing(lt.get("rank_interval_lower")):
            prob = lt.get("rank_interval_probability")
            prob = self.data.methodology.uncertainty.level if _missing(prob) else float(prob)
            where = (
                f"allowing for the play of chance in its data, its true rank lies between "
                f"{lt['rank_interval_lower']:.0f} and {lt['rank_interval_upper']:.0f} with about "
                f"{100 * prob:.0f}% probability (the rank interval)."
            )
        else:
            where = (
                f"NHS England's likely range of rank is {lt['rank_lower']:.0f} to {lt['rank_upper']:.0f}, which "
                "shows how uneven its metric scores are rather than the play of chance."
            )
        summary = [
            f"{self.names[code]} is in segment {seg} of {plural} for {quarter_label(self.quarter)}, ranked "
            f"{rank_label}{shared}; {where}"
        ]
        if bool(lt["financial_override"]):
            summary.append(
                f"Its scores alone place it in segment {int(lt['unadjusted_segment'])}; because it reports "
                "a deficit or receives deficit support, the financial override moves it to segment "
                f"{self.data.methodology.financial_override.to_segment}."
            )
        elif lt.get("in_financial_deficit") is True or lt.get("in_financial_deficit") is np.True_:
            summary.append(
                "It reports a deficit or receives deficit support; the financial override does not "
                "apply to segments 3 and 4."
            )
        return cards, summary

    def _metric_rows(self, code: str, ttype: str) -> tuple[list, list]:
        groups: dict[str, list] = {}
        trend_rows = []
        rm = self.data.revised_metrics
        for m in self.metrics:
            if ttype not in m.trust_types:
                continue
            t = self.tables[m.id]
            r = t.get(code)
            link = Cell(m.name, metric_href(m.id, "../"), m.unit)
            if r is None:
                value = "[x]"
            elif r["status"] == "suppressed":
                value = "[c]"
            elif r["status"] != "ok":
                value = "[x]"
            elif m.statistic == "bracket":
                value = str(r["category"]) if isinstance(r["category"], str) else "[x]"
            else:
                value = fmt(r["value"], m.decimals)
            if (code, m.id) in rm:
                value += REVISED
            ok = r is not None and r["status"] == "ok"
            if not ok:
                ci = score = band = peer_med = peer_rank = value if value in ("[c]", "[x]") else "[x]"
            else:
                ci = (
                    "[z]" if _missing(r["lower"]) else f"{fmt(r['lower'], m.decimals)} to {fmt(r['upper'], m.decimals)}"
                )
                score = "[z]" if m.scoring.method == "none" else fmt(r["score"], 2)
                band = (
                    "[z]" if not m.funnel else (r["funnel_outcome"] if isinstance(r["funnel_outcome"], str) else "[x]")
                )
                peer_med = _num(m, r["peer_median"])
                peer_rank = (
                    "[z]"
                    if m.statistic == "bracket"
                    else "[x]"
                    if _missing(r["peer_rank"])
                    else f"{int(r['peer_rank'])} of {int(r['peer_n']) + 1}"
                )
            type_value = "[x]" if r is None else _num(m, r["type_value"])
            trend: Spark | str = "[z]"
            values = []
            if m.id in self.history and m.statistic != "bracket":
                hv, hs = self.history[m.id]
                if code in hv:
                    values, stat = list(hv[code]), list(hs[code])
                    trend = sparkline(values, self.quarter_labels, m.name, m.decimals, m.unit)
                    cells = [
                        ("[c]" if s == "suppressed" else "[x]") if _missing(v) else fmt(v, m.decimals)
                        for v, s in zip(values, stat)
                    ]
                    trend_rows.append([m.name + f" ({m.unit})", *cells])
            if m.statistic == "bracket" or (m.id in self.history and not values):
                trend_rows.append(
                    [m.name + f" ({m.unit})", *(["[z]" if m.statistic == "bracket" else "[x]"] * len(self.quarters))]
                )
            groups.setdefault(m.domain, []).append(
                [link, value, ci, score, band, type_value, peer_med, peer_rank, trend]
            )
        ordered = [(d, groups[d]) for d in self.domains if d in groups]
        return ordered, trend_rows

    def _spc(self, code: str, ttype: str) -> dict:
        """The page's SPC section (:func:`spc_context`), made early by the pipeline when it could
        (:attr:`ReportData.profile_spc <leaguetables.publication.report.ReportData.profile_spc>`)."""
        early = self.data.profile_spc
        if early is not None and code in early:
            return early[code]
        return spc_context(self.data, code, ttype, self.names[code])

    def _productivity(self, code: str, ttype: str) -> tuple[list, str]:
        g = self.opp.get(code)
        if not g:
            return [], ""
        rows = []
        for r in g:
            m = self.data.catalogue.metric(r.metric_id)
            name = Cell(m.name, metric_href(m.id, "../"), m.unit)
            priced = f"£{r.unit_cost:,.0f} per {r.resource_unit}"
            if r.status != "ok":
                flag = "[c]" if r.status == "suppressed" else "[x]"
                rows.append([name, flag, "[x]", flag, "[x]", "[x]", "[x]", priced, "[x]"])
                continue
            crude = self.tables[m.id].get(code, {}).get("value")
            rows.append(
                [
                    name,
                    fmt(crude, m.decimals),
                    basis_text(r),
                    fmt(r.value, m.decimals),
                    fmt(r.benchmark, m.decimals),
                    fmt(r.gap, m.decimals),
                    fmt(r.resource_annual, 0),
                    priced,
                    money(r.opportunity_annual),
                ]
            )
        annual = [r.opportunity_annual for r in g if not _missing(r.opportunity_annual)]
        total = float(sum(annual))
        n = sum(1 for v in annual if v > 0)
        plural = TRUST_TYPE_PLURAL[ttype].lower()
        comp = (
            f"the best quarter of {plural}"
            if self.data.methodology.productivity.comparator == "type"
            else "the best quarter of its demographic peers"
        )
        what = (
            f"on {self.data.catalogue.metric(g[0].metric_id).name.lower()}"
            if len(g) == 1
            else f"on {len(g)} efficiency metrics"
        )
        if total > 0:
            sentence = (
                f"If {self.names[code]} matched {comp} {what}, resources worth about {money(total)} a year "
                "would be released" + (f" ({n} of the {len(g)} metrics show an opportunity)." if len(g) > 1 else ".")
            )
        else:
            sentence = (
                f"{self.names[code]} is at or better than {comp} on every costed efficiency metric it "
                "reports: no productivity opportunity."
            )
        return rows, sentence

    def _domains(self, lt) -> list:
        rows = []
        for d in self.domains:
            key = slug(d).replace("-", "_")
            sc, sg = lt.get(f"domain_score_{key}"), lt.get(f"domain_segment_{key}")
            if sc is None or _missing(sc):
                continue
            rows.append([d, fmt(sc, 2), "[x]" if _missing(sg) else str(int(sg))])
        return rows

    def _demographics(self, code: str, ttype: str) -> list:
        rows: list[list[str]] = []
        if code not in self.demo:
            return rows
        d = self.demo[code]
        med = self.demo_median.get(ttype)
        for col, label, kind in DEMOGRAPHICS:
            if col not in self.demo_cols:
                continue
            f = (
                (lambda v: fmt(v, 0))
                if kind == "count"
                else (lambda v: fmt(100 * v, 1, "%"))
                if kind == "share"
                else (lambda v: fmt(v, 1))
            )
            rows.append([label, f(d[col]), "[x]" if med is None else f(med[col])])
        return rows

    def _areas(self, info: dict) -> list[tuple[str, str, str]]:
        """The areas the trust is in (region, ICB, … as the register has them), each with its area page's link."""
        return [
            (g.label[:1].upper() + g.label[1:], str(info[g.column]), area_href(g, str(info[g.column]), "../"))
            for g in active_groupings(self.data.inputs.trusts)
            if not _missing(info.get(g.column))
        ]

    def context(self, code: str) -> dict:
        """One trust's profile page as plain values for ``templates/pages/profile.html.j2``."""
        lt = self.league[code]
        ttype = lt["trust_type"]
        info = self.trusts[code]
        cards, summary = self._cards(code, lt)
        groups, trend_rows = self._metric_rows(code, ttype)
        prod_rows, prod_sentence = self._productivity(code, ttype)
        name = self.names[code]
        rm = self.data.revised_metrics
        revised = any(c == code for c, _ in self.data.revised_league) or any(c == code for c, _ in rm)
        meth = self.data.methodology
        return {
            "title": f"{name} ({code}): trust profile, NHS trust league tables {quarter_label(self.quarter)}",
            "breadcrumbs": [
                ("../index.html", f"League tables {quarter_label(self.quarter)}"),
                (f"../index.html#league-{slug(ttype)}", TRUST_TYPE_PLURAL[ttype]),
                (None, name),
            ],
            "trust": _trust_facts(name, code, ttype, info),
            "period": f"{quarter_label(self.quarter)} ({quarter_period(self.quarter)})",
            "quarter_label": quarter_label(self.quarter),
            "demo": self.data.run.get("source") == "demo",
            "thresholds_notice": thresholds_notice(meth),
            "site_label": site_label(self.data.run.get("source", "files")),
            "source_notice": Markup(
                source_notice(self.data.run.get("source", "files"), None, self.data.run.get("omitted_metrics") or ())
            ),
            "revised": revised,
            "root": "../",
            "areas": self._areas(info),
            "cards": cards,
            "summary": summary,
            "probability_rows": _segment_probabilities(lt),
            "replicates": f"{meth.bootstrap.replicates:,}",
            "league_anchor": f"league-{slug(ttype)}",
            "metric_columns": METRIC_COLUMNS,
            "metric_groups": groups,
            "peer_k": meth.peers.k,
            "trend_columns": [("Metric", False)] + [(q, True) for q in self.quarter_labels],
            "trend_rows": trend_rows,
            "productivity_columns": PRODUCTIVITY_COLUMNS,
            "productivity_pooled": meth.productivity.pool_quarters,
            "productivity_estimate": meth.productivity.estimate,
            "productivity_rows": prod_rows,
            "productivity_sentence": prod_sentence,
            "comparator_text": (
                TRUST_TYPE_PLURAL[ttype].lower()
                if meth.productivity.comparator == "type"
                else "the trust's demographic peers"
            ),
            "annualise": meth.productivity.annualise,
            "domain_rows": self._domains(lt),
            "peers": [(profile_file(p), self.names.get(p, p), p) for p in self.peers.get(code, [])],
            "demographic_rows": self._demographics(code, ttype),
            "provenance": self.provenance,
            "search_data": self.data.search_data,
            **self._spc(code, ttype),
        }


def spc_context(data: ReportData, code: str, ttype: str, name: str) -> dict:
    """One trust's SPC section of its profile (``name``: the trust's name): variation and assurance in words per
    metric, one small-multiples XmR figure, and the limits table. It reads the metric results and SPC of ``data``,
    never its league."""
    from leaguetables.publication.spc_chart import spc_svg
    from leaguetables.statistics.spc import ASSURANCE, VARIATION, describe_assurance, describe_variation

    spc, quarters = data.spc
    rows, limits, panels = [], [], []
    for m in data.metrics_run:
        if ttype not in m.trust_types or m.id not in spc:
            continue
        r = spc[m.id].get(code)
        if r is None:
            continue
        label = f"{m.name} ({m.unit})"
        rows.append([label, describe_variation(r, m.decimals, m.unit), describe_assurance(r, m.decimals, m.unit)])
        if r.assessed:
            panels.append((m.name, r))
            limits.append(
                [
                    label,
                    str(r.n_points),
                    fmt(r.mean, m.decimals),
                    fmt(r.lower, m.decimals),
                    fmt(r.upper, m.decimals),
                    "[z]" if r.target is None else fmt(r.target, m.decimals),
                    VARIATION[r.variation],
                    ASSURANCE[r.assurance].split(":")[0],
                ]
            )
    svg, alt = spc_svg(panels, name)
    n_special = sum(1 for _, r in panels if r.variation != "common_cause")
    return {
        "spc_rows": rows,
        "spc_limits": limits,
        "spc_svg": svg,
        "spc_alt": alt,
        "spc_assessed": len(panels),
        "spc_special": n_special,
        "spc_quarters": len(quarters),
        "spc_range": f"{quarter_label(quarters[0])} to {quarter_label(quarters[-1])}" if quarters else "",
        "spc_min_points": data.methodology.spc.min_points,
    }


def spc_contexts(data: ReportData) -> dict[str, dict]:
    """:func:`spc_context` of every trust of the register (the pipeline makes them while the league notebook runs:
    they do not depend on the league)."""
    trusts = data.inputs.trusts
    return {
        code: spc_context(data, code, ttype, name)
        for code, ttype, name in zip(trusts["trust_code"], trusts["trust_type"], trusts["trust_name"])
    }


def _trust_facts(name: str, code: str, ttype: str, info: dict) -> dict:
    """The trust's name, code, type, subtype and region as the page heads them ("" where the register has none)."""
    return {
        "name": name,
        "code": code,
        "type_label": TRUST_TYPE_LABELS[ttype],
        "type_plural": TRUST_TYPE_PLURAL[ttype],
        # a subtype that only repeats the type ("Integrated care board (Integrated care board)") is not shown
        "subtype": ""
        if _missing(info.get("trust_subtype")) or str(info["trust_subtype"]).lower() == TRUST_TYPE_LABELS[ttype].lower()
        else str(info["trust_subtype"]),
        "region": "" if _missing(info.get("region")) else str(info["region"]),
        "code_label": "ICB code" if ttype == "icb" else "Trust code",
    }


def _segment_probabilities(lt: dict) -> list[list[str]]:
    """The bootstrap probability of each segment 1 to 4, in whole percent."""
    return [
        [f"Segment {s}", f"{100 * lt[f'p_segment_{s}']:.0f}%" if not _missing(lt[f"p_segment_{s}"]) else "[x]"]
        for s in range(1, 5)
    ]


def basis_text(r) -> str:
    """How a productivity row's compared value was formed, in words (the metrics table shows the crude value).

    >>> from types import SimpleNamespace as N
    >>> basis_text(N(basis="demographically adjusted", quarters_pooled=4, estimate="constrained"))
    'adjusted for demographics (O/E × the type’s value); 4 quarters pooled; shrunken (empirical Bayes)'
    >>> basis_text(N(basis="crude", quarters_pooled=1, estimate="observed"))
    'not adjusted (the trust’s value); this quarter'
    """
    parts = [
        "adjusted for demographics (O/E × the type’s value)"
        if r.basis == "demographically adjusted"
        else "not adjusted (the trust’s value)"
    ]
    k = int(getattr(r, "quarters_pooled", 1) or 1)
    parts.append(f"{k} quarters pooled" if k > 1 else "this quarter")
    est = getattr(r, "estimate", "observed")
    if est in ("shrunken", "constrained"):
        parts.append("shrunken (empirical Bayes)")
    return "; ".join(parts)


def _short_move(mv) -> str:
    ch = int(mv.rank_change)
    return "no change" if ch == 0 else (f"up {-ch}" if ch < 0 else f"down {ch}")


def write_profiles(data: ReportData, folder: Path) -> dict:
    """Write every trust's profile into ``folder``; return pages, seconds and sizes."""
    t0 = time.perf_counter()
    builder = ProfileBuilder(data)
    t_index = time.perf_counter() - t0
    template = pages.environment().get_template("profile.html.j2")
    sizes = {}
    order = data.league.table.sort_values(["trust_type", "trust_code"], kind="mergesort")["trust_code"]
    for code in order:
        sizes[code] = pages.write(Path(folder) / profile_file(code), template.render(**builder.context(code)))
    return {
        "pages": len(sizes),
        "seconds": time.perf_counter() - t0,
        "index_seconds": t_index,
        "bytes": sum(sizes.values()),
        "max_bytes": max(sizes.values()) if sizes else 0,
    }
