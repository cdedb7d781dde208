"""Commissioning: each phase's checklist run, judged and recorded.

- `report`: `Check`, `PhaseReport`, and how checks and the council combine into a verdict.
- `phase1`: foundation (council, vault, rotation, file modes, monitoring, headroom).
- `phase2`: exchange validation, judging the facts `lyra_governor.exchanges` collected.
- `gates`: phases 3-5, the ladder's evidence gates read from the ledger.
- `runner`: `CommissionRunner(settings, ledger, council, ...).run(phase) -> PhaseReport`.
"""

from __future__ import annotations

from lyra_governor.commissioning.report import Check, PhaseReport, final_verdict

__all__ = ["Check", "PhaseReport", "final_verdict"]
