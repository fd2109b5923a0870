"""England's and each trust's totals of the productivity opportunity (:func:`leaguetables.statistics.productivity.
opportunities`' table), for the report: pandas only, so that the publication stage reads them without the models."""

from __future__ import annotations

import pandas as pd


def england_summary(opp: pd.DataFrame, order: dict[str, int] | None = None) -> pd.DataFrame:
    """Totals per metric: the number of trusts compared and with an opportunity, the resource released and the
    opportunity (annual). ``order`` (metric id → position, e.g. the catalogue's) sorts the rows (stable)."""
    if opp.empty:
        return pd.DataFrame(
            columns=[
                "metric_id",
                "metric_name",
                "trusts",
                "trusts_with_opportunity",
                "resource_annual",
                "opportunity_annual",
            ]
        )
    g = opp.groupby(["metric_id", "metric_name"], sort=False)
    out = pd.DataFrame(
        {
            "trusts": g["value"].apply(lambda v: int(v.notna().sum())),
            "trusts_with_opportunity": g["opportunity_annual"].apply(lambda v: int((v > 0).sum())),
            "resource_annual": g["resource_annual"].sum(min_count=1),
            "opportunity_annual": g["opportunity_annual"].sum(min_count=1),
        }
    ).reset_index()
    if order is not None:
        out = out.iloc[out["metric_id"].map(order).argsort(kind="mergesort")].reset_index(drop=True)
    return out


def england_total(opp: pd.DataFrame) -> dict:
    """The all-metrics line: the annual opportunity summed over metrics (an upper bound: the metrics overlap) and
    the number of trusts with an opportunity on at least one metric."""
    if opp.empty:
        return {"opportunity_annual": 0.0, "trusts_with_opportunity": 0}
    return {
        "opportunity_annual": float(opp["opportunity_annual"].sum()),
        "trusts_with_opportunity": int((opp.groupby("trust_code")["opportunity_annual"].sum() > 0).sum()),
    }


def trust_totals(opp: pd.DataFrame) -> pd.DataFrame:
    """Annual opportunity per trust summed over metrics, largest first (ties by trust code)."""
    if opp.empty:
        return pd.DataFrame(columns=["trust_code", "trust_name", "trust_type", "opportunity_annual", "metrics"])
    g = opp.groupby(["trust_code", "trust_name", "trust_type"], sort=True)
    out = pd.DataFrame(
        {
            "opportunity_annual": g["opportunity_annual"].sum(min_count=1),
            "metrics": g["opportunity_annual"].apply(lambda v: int((v > 0).sum())),
        }
    ).reset_index()
    out = out.sort_values(["opportunity_annual", "trust_code"], ascending=[False, True], kind="mergesort")
    return out.reset_index(drop=True)
