"""Blinding: assignment designs, reading sessions, catch and repeat items, and ``assign``.

See :mod:`studyhub.blinding.designs` (who reads what, which session),
:mod:`studyhub.blinding.ordering` (random order with a minimum gap),
:mod:`studyhub.blinding.plan` (training, catch and repeat items) and
:mod:`studyhub.blinding.assign` (writing the plan; the session/washout contract
for the rating service).
"""

from studyhub.blinding.assign import AssignReport, assign_study, check_study, washout_until
from studyhub.blinding.balance import ArmBalance, Balance, BalanceRow, ItemRow, balance
from studyhub.blinding.designs import (
    StimulusRef,
    allocate,
    allocate_bib,
    allocate_fully_crossed,
    rng_for,
    split_sessions,
)
from studyhub.blinding.ordering import (
    GapImpossibleError,
    min_items_needed,
    observed_min_gap,
    order_items,
)
from studyhub.blinding.plan import (
    KINDS,
    Plan,
    PlannedItem,
    RaterPlan,
    build_plan,
    catch_expectation,
    plan_rater,
    round_half_up,
)

__all__ = [
    "KINDS",
    "ArmBalance",
    "AssignReport",
    "Balance",
    "BalanceRow",
    "GapImpossibleError",
    "ItemRow",
    "Plan",
    "PlannedItem",
    "RaterPlan",
    "StimulusRef",
    "allocate",
    "allocate_bib",
    "allocate_fully_crossed",
    "assign_study",
    "balance",
    "build_plan",
    "catch_expectation",
    "check_study",
    "min_items_needed",
    "observed_min_gap",
    "order_items",
    "plan_rater",
    "rng_for",
    "round_half_up",
    "split_sessions",
    "washout_until",
]
