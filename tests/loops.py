"""Shared by tests that drive Hummingbot objects on their own asyncio loop."""

from __future__ import annotations

import asyncio


def shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the loop's tasks while it still runs, close it, and leave a fresh loop current.

    A task left to the garbage collector after close() spins in StrategyV2Base's
    `except Exception` retry loop; later tests build Hummingbot objects that want a loop.
    """
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())
