"""The `Voter` protocol: one council role that answers a `CouncilContext` with a `Ballot`.

A voter never raises for a bad answer: malformed, late or refused output becomes a ballot
with `vote=None` and an `error`, which the aggregation counts against approval.
"""

from __future__ import annotations

from typing import Protocol

from lyra_governor.config import RoleSettings
from lyra_governor.models import Ballot, CouncilContext


class Voter(Protocol):
    role: RoleSettings

    async def vote(self, context: CouncilContext, deadline_s: float) -> Ballot:
        """Answer within `deadline_s` seconds, or return a no-answer ballot."""
        ...

    async def aclose(self) -> None:
        """Release network resources (no-op for local voters)."""
        ...
