"""The issue's goals as `make bench` prints them: each measured figure next to its target,
MET or MISSED, in one table at the end of the run (benchmarks/conftest.py prints it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str
    target: str
    met: bool
    note: str = ""


GOALS: list[Goal] = []


def goal(
    name: str,
    value: float,
    target: float,
    unit: str,
    *,
    below: bool = True,
    inclusive: bool = False,
    note: str = "",
) -> bool:
    """Record one goal: ``value`` must be below ``target`` (at most it with ``inclusive``),
    or with ``below=False`` at least it."""
    if below:
        met = value <= target if inclusive else value < target
        sign = "<=" if inclusive else "<"
    else:
        met, sign = value >= target, ">="
    GOALS.append(
        Goal(name, f"{value:.3g} {unit}".strip(), f"{sign} {target:g} {unit}".strip(), met, note)
    )
    verdict = "MET" if met else "MISSED"
    print(f"\nGOAL {name}: {value:.3g} {unit} (target {sign} {target:g} {unit}): {verdict}")
    return met


def table() -> list[str]:
    if not GOALS:
        return []
    width = max(len(g.name) for g in GOALS)
    lines = [f"{'goal':<{width}}  {'measured':>14}  {'target':>14}  result"]
    for g in GOALS:
        result = "MET" if g.met else "MISSED"
        note = f"  ({g.note})" if g.note else ""
        lines.append(f"{g.name:<{width}}  {g.measured:>14}  {g.target:>14}  {result}{note}")
    return lines
