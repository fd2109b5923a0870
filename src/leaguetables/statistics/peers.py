""" "Similar 10" demographic peers (NHS RightCare / Model Health System; nof-methodology.md, end).

For each demographic variable v (the keys of ``weights``), over the trusts of one comparison group:

1. **cap** at ``mean + 5 SD`` (only the upper tail is capped; mean and sample SD, ddof=1, of the raw
   values);
2. **shift** (documented choice): if the capped variable has any negative value, a square root is
   undefined, so the whole variable is shifted by ``−min`` (its minimum becomes 0) before step 3. A
   variable with no negative values is not shifted;
3. **square root**;
4. **z-score** (mean and sample SD, ddof=1, of the square-rooted values). A variable that is constant
   within the group gets z = 0 for every trust (it cannot separate trusts);
5. **distance** ``d(i, j) = Σ_v w_v (z_iv − z_jv)²`` (weighted sum of squared differences; symmetric);
6. **peers**: the ``k`` smallest **non-zero** distances, the trust itself excluded. Ties in distance are
   broken by peer trust code (distances are compared after rounding to 10 decimal places, so that
   floating-point noise cannot decide a tie). A trust with an identical standardised profile
   (distance exactly 0) is not a peer, as the method's "non-zero" wording says; pass
   ``include_identical=True`` to keep such trusts. If fewer than ``k`` candidates exist, all are
   returned (``peer_position`` reports ``peer_n``).

With ``within`` (e.g. trust type), peers come only from the trust's own group and steps 1–4 are computed
within each group (equivalent to running the method separately per group, as the Model Health System
does per trust type).

Missing values (a weighted variable or the group): ``on_missing="raise"`` (default) raises
:class:`PeerError` naming the trusts; ``"exclude"`` leaves them out (they get no peers and are nobody's
peer) and lists them in ``result.attrs["excluded"]``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import pandas as pd

from leaguetables.config import ICB_TYPES, Methodology

__all__ = ["PeerError", "peer_groups", "peer_position", "peer_table", "similar_peers"]

TRUST = "trust_code"
_CAP_SD = 5.0
_TIE_DECIMALS = 10


class PeerError(ValueError):
    """Peers cannot be computed; the message is meant to be shown to the caller."""


def _standardise_group(x: pd.DataFrame) -> pd.DataFrame:
    """Steps 1–4 on one group's values (rows = trusts, columns = variables)."""
    out = {}
    for col in x.columns:
        v = x[col].to_numpy(dtype=float)
        if len(v) > 1:
            cap = v.mean() + _CAP_SD * v.std(ddof=1)
            v = np.minimum(v, cap)
        vmin = v.min()
        if vmin < 0:
            v = v - vmin
        r = np.sqrt(v)
        sd = r.std(ddof=1) if len(r) > 1 else 0.0
        if not np.isfinite(sd) or sd <= 1e-12 * max(1.0, abs(r.mean())):
            out[col] = np.zeros_like(r)
        else:
            out[col] = (r - r.mean()) / sd
    return pd.DataFrame(out, index=x.index)


def similar_peers(
    demographics: pd.DataFrame,
    weights: dict[str, float],
    k: int = 10,
    within: pd.Series | None = None,
    *,
    on_missing: Literal["raise", "exclude"] = "raise",
    include_identical: bool = False,
) -> pd.DataFrame:
    """The ``k`` nearest demographic peers of every trust ("Similar 10").

    Parameters
    ----------
    demographics
        Indexed by trust_code (or with a ``trust_code`` column); one row per trust.
    weights
        ``{column: weight}``; weights must be non-negative and not all zero.
    k
        Number of peers (default 10).
    within
        Optional Series indexed by trust_code (e.g. trust type): peers only within the same group.

    Returns
    -------
    DataFrame with columns trust_code, peer_code, distance, peer_rank (1 = nearest), sorted by
    trust_code then peer_rank. ``attrs["excluded"]`` maps excluded trust codes to the reason.
    """
    w = _check_peer_arguments(weights, k, on_missing)
    x = _demographic_matrix(demographics, w)
    group = _peer_groups(within, x.index)
    excluded = _incomplete_trusts(x, group)
    if excluded and on_missing == "raise":
        raise PeerError("missing values for trusts " + ", ".join(f"{t} ({r})" for t, r in sorted(excluded.items())))
    keep = [t for t in sorted(x.index) if t not in excluded]
    x = x.loc[keep]
    group = group.loc[keep].astype(str)

    frames = []
    for g in sorted(group.unique()):
        members = [t for t in keep if group.at[t] == g]
        frames += _nearest_in_group(x.loc[members], w.to_numpy(), k, include_identical)
    if frames:
        out = pd.concat(frames, ignore_index=True)
    else:
        out = pd.DataFrame({TRUST: [], "peer_code": [], "distance": [], "peer_rank": []})
    out = out.astype({TRUST: "str", "peer_code": "str", "distance": float, "peer_rank": "int64"})
    out = out.sort_values([TRUST, "peer_rank"], kind="stable").reset_index(drop=True)
    out.attrs["excluded"] = dict(sorted(excluded.items()))
    return out


def _check_peer_arguments(weights: dict[str, float], k: int, on_missing: str) -> pd.Series:
    """Reject a ``k``, ``on_missing`` or weights :func:`similar_peers` cannot use; the weights as a Series."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise PeerError(f"k must be a positive integer; got {k!r}")
    if on_missing not in ("raise", "exclude"):
        raise PeerError(f"on_missing must be 'raise' or 'exclude'; got {on_missing!r}")
    if not weights:
        raise PeerError("weights is empty: name at least one demographic variable")
    w = pd.Series(weights, dtype=float)
    if w.isna().any() or (w < 0).any() or not (w > 0).any():
        raise PeerError(f"weights must be non-negative numbers, not all zero; got {weights}")
    return w


def _demographic_matrix(demographics: pd.DataFrame, w: pd.Series) -> pd.DataFrame:
    """The weighted demographic variables as floats, one row per trust indexed by trust code (unique, as strings);
    missing values stay NaN, anything not numeric or infinite is an error."""
    demo = demographics
    if TRUST in demo.columns:
        demo = demo.set_index(TRUST)
    demo = demo.copy()
    demo.index = demo.index.astype(str)
    demo.index.name = TRUST
    if demo.index.duplicated().any():
        raise PeerError(f"duplicate trust codes: {sorted(demo.index[demo.index.duplicated()].unique())}")
    missing_cols = [c for c in w.index if c not in demo.columns]
    if missing_cols:
        raise PeerError(f"demographics has no column(s) {missing_cols}")
    try:
        x = demo[list(w.index)].apply(pd.to_numeric, errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise PeerError(f"demographic variables must be numeric: {exc}") from None
    if np.isinf(x.to_numpy()).any():
        raise PeerError("demographic variables have infinite values")
    return x


def _peer_groups(within: pd.Series | None, index: pd.Index) -> pd.Series:
    """Each trust's group (peers are found within a group): one group ``"all"`` without ``within``, else its value
    (missing where ``within`` has no entry)."""
    if within is None:
        return pd.Series("all", index=index, dtype="str")
    group = pd.Series(within).copy()
    group.index = group.index.astype(str)
    return group.reindex(index)


def _incomplete_trusts(x: pd.DataFrame, group: pd.Series) -> dict[str, str]:
    """The trusts with a missing variable or group, each with the reason (which are missing)."""
    excluded: dict[str, str] = {}
    for t in x.index:
        reasons = [c for c in x.columns if pd.isna(x.at[t, c])]
        parts = []
        if reasons:
            parts.append("missing " + ", ".join(reasons))
        if pd.isna(group.at[t]):
            parts.append("missing group (within)")
        if parts:
            excluded[t] = "; ".join(parts)
    return excluded


def _nearest_in_group(x: pd.DataFrame, wv: np.ndarray, k: int, include_identical: bool) -> list[pd.DataFrame]:
    """The ``k`` nearest peers of each trust of one group (rows of ``x``, sorted by code): weighted squared
    Euclidean distance of the variables standardised within the group, ties broken by rounded distance then code;
    trusts at distance 0 are not peers unless ``include_identical``. One frame per trust that has a peer."""
    members = list(x.index)
    z = _standardise_group(x).to_numpy()
    # d[i, j] = Σ_v w_v (z_iv − z_jv)²
    diff = z[:, None, :] - z[None, :, :]
    d = np.einsum("ijv,v->ij", diff**2, wv)
    codes = np.array(members, dtype=object)
    frames = []
    for i, t in enumerate(members):
        cand = np.arange(len(members)) != i
        if not include_identical:
            cand &= d[i] > 0
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            continue
        order = np.lexsort((codes[idx].astype(str), np.round(d[i, idx], _TIE_DECIMALS)))
        chosen = idx[order[:k]]
        frames.append(
            pd.DataFrame(
                {
                    TRUST: t,
                    "peer_code": codes[chosen].astype(str),
                    "distance": d[i, chosen],
                    "peer_rank": np.arange(1, len(chosen) + 1),
                }
            )
        )
    return frames


_HIGHER = {"higher_better", "high", "higher", "up"}
_LOWER = {"lower_better", "low", "lower", "down"}


def peer_position(
    values: pd.Series,
    peers: pd.DataFrame,
    direction: Literal["higher_better", "lower_better"],
) -> pd.DataFrame:
    """Where each trust stands among itself and its peers.

    Parameters
    ----------
    values
        Metric value per trust (indexed by trust_code); missing values are ignored.
    peers
        Output of :func:`similar_peers`.
    direction
        "higher_better" or "lower_better" (aliases "high"/"low").

    Returns
    -------
    DataFrame per trust of ``peers`` (sorted by trust code): trust_code, value, peer_median (median of
    the peers' non-missing values, the trust itself excluded), peer_n (number of peers with a value),
    peer_rank (1 = best among the trust and its peers with values; ties share the better rank, as in
    statistical-methods.md §1.5; missing when the trust's own value is missing), group_n (peer_n + 1),
    peer_quartile (1 = best quarter; the §1.5 quantile formula with nq = 4 on group_n; missing if
    the trust's value is missing or group_n < 4).
    """
    if direction in _HIGHER:
        sign = -1.0
    elif direction in _LOWER:
        sign = 1.0
    else:
        raise PeerError(f"direction must be 'higher_better' or 'lower_better'; got {direction!r}")
    v = pd.Series(values, dtype=float).copy()
    v.index = v.index.astype(str)
    if v.index.duplicated().any():
        raise PeerError("values has duplicate trust codes")
    for c in (TRUST, "peer_code"):
        if c not in peers.columns:
            raise PeerError(f"peers needs a {c} column (the output of similar_peers)")

    trusts = sorted(peers[TRUST].astype(str).unique())
    peer_codes = peers.assign(**{TRUST: peers[TRUST].astype(str), "peer_code": peers["peer_code"].astype(str)})
    # each peer row's value (NaN: no value, or not in ``values``), and each trust's peer rows in their order: a
    # trust's non-missing peer values as ``v.reindex(its peers).dropna()`` gives them, without a Series per trust
    at = v.index.get_indexer(peer_codes["peer_code"].to_numpy())  # -1: not in ``values``, the NaN appended
    peer_values = np.append(v.to_numpy(float), np.nan)[at]
    groups = peer_codes.groupby(TRUST).indices
    rows = []
    nq = 4
    for t in trusts:
        pv = peer_values[groups[t]]
        pv = pv[~np.isnan(pv)]
        own = v.get(t, np.nan)
        med = float(np.median(pv)) if pv.size else np.nan
        rank = pd.NA
        quart = pd.NA
        group_n = pv.size + 1
        if not pd.isna(own):
            # 1 + number of peers strictly better; ties share the better rank ("min" ranking)
            rank = 1 + int(np.sum(sign * pv < sign * own))
            if group_n >= nq:
                q = np.floor((nq + 1) - np.ceil(((group_n + 1) - rank) / (group_n / nq)))
                quart = int(max(q, 1))
                # with rank 1 = best, the §1.5 formula gives quantile 1 to the lowest ranks (the best)
        rows.append(
            {
                TRUST: t,
                "value": own,
                "peer_median": med,
                "peer_n": int(pv.size),
                "peer_rank": rank,
                "group_n": int(group_n),
                "peer_quartile": quart,
            }
        )
    out = pd.DataFrame(rows, columns=[TRUST, "value", "peer_median", "peer_n", "peer_rank", "group_n", "peer_quartile"])
    return out.astype(
        {
            TRUST: "str",
            "value": float,
            "peer_median": float,
            "peer_n": "int64",
            "peer_rank": "Int64",
            "group_n": "int64",
            "peer_quartile": "Int64",
        }
    )


_PEER_TABLES: dict[str, pd.DataFrame] = {}  # per process: a warm kernel reuses it across metric notebooks


def peer_table(demographics: pd.DataFrame, trusts: pd.DataFrame, methodology: Methodology) -> pd.DataFrame:
    """The "Similar 10" peers of every trust (the same for every metric of a run, so computed once per process).

    A demographic variable missing for any trust is left out of the distance for everyone, so that all trusts are
    compared on the same variables. Providers and ICBs are different kinds of organisation, never each other's
    peers: each kind's peers are found on its own (the ICBs' missing ethnicity does not change the providers')."""
    icb = trusts.set_index("trust_code")["trust_type"].isin(ICB_TYPES)
    parts = [
        _peer_table_of(demographics[demographics["trust_code"].isin(icb.index[mask])], trusts, methodology)
        for mask in (~icb, icb)
        if mask.any()
    ]
    found = [p for p in parts if len(p)]
    if len(found) > 1:
        return pd.concat(found, ignore_index=True)
    return found[0] if found else pd.DataFrame(columns=["trust_code", "peer_code", "distance", "peer_rank"])


def _peer_table_of(demographics: pd.DataFrame, trusts: pd.DataFrame, methodology: Methodology) -> pd.DataFrame:
    p = methodology.peers
    demo = demographics.set_index("trust_code").sort_index()
    # trusts with no demographic data at all (e.g. mental health trusts, which have no OHID catchment) get no
    # peers; the variables are chosen among the others
    have = demo[list(p.weights)].notna().any(axis=1)
    demo = demo[have] if have.any() else demo
    weights = {k: v for k, v in p.weights.items() if demo[k].notna().all()}
    if not weights or len(demo) < 2:
        return pd.DataFrame(columns=["trust_code", "peer_code", "distance", "peer_rank"])
    types = trusts.set_index("trust_code")["trust_type"].sort_index()
    types = types[types.index.isin(demo.index)]
    key = hashlib.sha256(
        pd.util.hash_pandas_object(demo[list(weights)]).to_numpy().tobytes()
        + pd.util.hash_pandas_object(types).to_numpy().tobytes()
        + repr((sorted(weights.items()), p.k, p.within_type)).encode()
    ).hexdigest()
    if key not in _PEER_TABLES:
        within = types if p.within_type else None
        _PEER_TABLES[key] = similar_peers(demo[list(weights)], weights, k=p.k, within=within)
    return _PEER_TABLES[key]


def peer_groups(demographics: pd.DataFrame, trusts: pd.DataFrame, methodology: Methodology) -> dict[str, list[str]]:
    """Each trust's "Similar 10" peers, computed exactly as the metric tables' peer columns are
    (:func:`peer_table`)."""
    table = peer_table(demographics, trusts, methodology)
    return {t: list(g["peer_code"]) for t, g in table.groupby("trust_code", sort=True)}
