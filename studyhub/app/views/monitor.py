"""The monitor page: completion per rater, catch-item failures, median time per item.

Nothing else: no images, no answers, nothing per arm (the service returns none).
"""

from __future__ import annotations

import streamlit as st

from studyhub.rating import Principal, monitor_summary
from studyhub.store.db import Store

__all__ = ["show"]


def _seconds(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:.1f} s"


def show(store: Store, principal: Principal) -> None:
    """Draw the study's progress for a monitor or admin.

    Parameters
    ----------
    store : Store
        The open store.
    principal : Principal
        A signed-in monitor or admin (raters get the service's refusal).
    """
    summary = monitor_summary(store, principal)
    st.title("Study progress")
    st.caption(f"Study state: {summary.state}")
    done = sum(r.done for r in summary.raters)
    total = sum(r.total for r in summary.raters)
    c1, c2 = st.columns(2)
    c1.metric("Items done", f"{done} of {total}")
    c2.metric("Median time per item", _seconds(summary.median_time_ms))
    rows = [
        {
            "rater": r.name + (" (revoked)" if r.revoked else ""),
            "consented": "yes" if r.consented else "not yet",
            "done": r.done,
            "total": r.total,
            "completion": f"{100 * r.done / r.total:.0f}%" if r.total else "–",
            "catch items answered": r.catch_items,
            "catch failures": r.catch_failures,
            "median time per item": _seconds(r.median_time_ms),
        }
        for r in summary.raters
    ]
    if rows:
        st.table(rows)
    else:
        st.info("No rater accounts yet.")
