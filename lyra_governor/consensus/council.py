"""The council: ask every role in parallel, stop as soon as the outcome is settled, aggregate.

`adecide` is the async core (one event loop, one shared HTTP client for OpenRouter voters);
`decide` runs it from synchronous code. Local voters answer inline, so a local council decides
in well under a millisecond and is deterministic: the offline paper run is reproducible.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Sequence
from typing import Any

from lyra_governor.config import Settings
from lyra_governor.consensus.aggregation import aggregate, is_degraded, reachable_rate, settled
from lyra_governor.consensus.local import LocalVoter
from lyra_governor.consensus.voters import Voter
from lyra_governor.errors import ConfigError
from lyra_governor.models import Ballot, ConsensusResult, CouncilContext


def build_voters(settings: Settings, vault: Any = None) -> list[Voter]:
    """Local voters by default; OpenRouter voters when `consensus.backend` is openrouter."""
    roles = settings.consensus.roles
    if settings.consensus.backend == "local":
        return [LocalVoter(role) for role in roles]
    try:
        openrouter = importlib.import_module("lyra_governor.consensus.openrouter")
    except ImportError as exc:
        raise ConfigError(
            f"consensus.backend is openrouter but its client cannot load ({exc}); set consensus.backend: local"
        ) from None
    voters: list[Voter] = openrouter.build_voters(settings, vault)
    return voters


class Council:
    def __init__(self, settings: Settings, voters: Sequence[Voter]) -> None:
        self.settings = settings
        self.voters = list(voters)
        self.weights = {v.role.name: v.role.weight for v in self.voters}
        self.local = all(isinstance(v, LocalVoter) for v in self.voters)
        self.calls = 0
        self.cost_usd = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, vault: Any = None) -> Council:
        return cls(settings, build_voters(settings, vault))

    def _result(self, context: CouncilContext, ballots: list[Ballot], started: float) -> ConsensusResult:
        answered = {b.role for b in ballots}
        for voter in self.voters:  # voters cut off by an early exit or the deadline: no answer
            if voter.role.name not in answered:
                ballots.append(
                    Ballot(
                        role=voter.role.name,
                        model=getattr(voter, "model", voter.role.model),
                        weight=voter.role.weight,
                        error=_NOT_AWAITED,
                        error_kind="not_awaited",
                    )
                )
        threshold = self.settings.threshold(context.phase)
        quorum = self.settings.consensus.quorum
        verdict, agreement, response, confidence, scale, reasons = aggregate(
            ballots, self.weights, threshold, quorum
        )
        cost = sum(b.cost_usd for b in ballots)
        self.calls += sum(
            1 for b in ballots if not b.model.startswith("local/") and b.error_kind not in _NO_CALL
        )
        self.cost_usd += cost
        return ConsensusResult(
            phase=context.phase,
            verdict=verdict,
            agreement=round(agreement, 6),
            threshold=threshold,
            response_rate=round(response, 6),
            mean_confidence=round(confidence, 6),
            size_scale=scale,
            degraded=is_degraded(reachable_rate(ballots, self.weights), quorum),
            quorum=quorum,
            reasons=reasons,
            ballots=ballots,
            latency_s=time.perf_counter() - started,
            cost_usd=cost,
            decided_at=context.now or time.time(),
        )

    def role_models(self) -> list[Any]:
        """Each network voter's catalogue resolution (`catalogue.RoleModels`); [] for local voters."""
        return [v.models for v in self.voters if hasattr(v, "models")]

    def models_gone(self) -> list[str]:
        """One sentence per role whose slug and fallbacks are all gone from the catalogue."""
        return [m.describe() for m in self.role_models() if m.gone]

    def decide_local(self, context: CouncilContext) -> ConsensusResult:
        """Synchronous path for local voters (no event loop needed). All of them are asked:
        they answer in microseconds, so there is nothing to save by stopping early."""
        started = time.perf_counter()
        ballots = [voter.vote_now(context) for voter in self.voters if isinstance(voter, LocalVoter)]
        return self._result(context, ballots, started)

    async def adecide(self, context: CouncilContext) -> ConsensusResult:
        """Ask every voter at once; return when all answered, the deadline passed, or the
        outcome can no longer change."""
        if self.local:
            return self.decide_local(context)
        started = time.perf_counter()
        deadline = self.settings.consensus.deadline_s
        threshold = self.settings.threshold(context.phase)
        tasks = {asyncio.ensure_future(v.vote(context, deadline)): v for v in self.voters}
        ballots: list[Ballot] = []
        pending = set(tasks)
        try:
            end = time.monotonic() + deadline + 0.5
            while pending:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    voter = tasks[task]
                    try:
                        ballots.append(task.result())
                    except Exception as exc:  # a voter bug is a non-answer
                        ballots.append(
                            Ballot(
                                role=voter.role.name,
                                model=getattr(voter, "model", voter.role.model),
                                weight=voter.role.weight,
                                error=f"{type(exc).__name__}: {exc}",
                                error_kind="voter_bug",
                            )
                        )
                if settled(ballots, self.weights, threshold):
                    break
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return self._result(context, ballots, started)

    def decide(self, context: CouncilContext) -> ConsensusResult:
        """Synchronous entry point (CLI, commissioning). Not for use inside a running loop."""
        if self.local:
            return self.decide_local(context)
        return asyncio.run(self._decide_and_close(context))

    async def _decide_and_close(self, context: CouncilContext) -> ConsensusResult:
        try:
            return await self.adecide(context)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        for voter in self.voters:
            await voter.aclose()


_NOT_AWAITED = "not awaited: the outcome was already settled"
_NO_CALL = {"not_awaited", "model_gone", "budget"}
