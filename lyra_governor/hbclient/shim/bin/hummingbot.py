"""What Hummingbot's quickstart imports from its source `bin/hummingbot.py`, written for Lyra.

`hummingbot_quickstart.py` needs `UIStartListener` (in the terminal UI, start the script the
command line named once the UI is up) and `detect_available_port`. The pip package ships neither
file, so these are Lyra's, built on the package's own API (`HummingbotApplication.start`).
"""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import ref

from hummingbot.client.config.config_helpers import write_config_to_yml
from hummingbot.core.event.event_listener import EventListener
from hummingbot.core.utils import detect_available_port

__all__ = ["UIStartListener", "detect_available_port"]


class UIStartListener(EventListener):  # type: ignore[misc]
    """On Hummingbot's UI start event, start the strategy or V2 script config given at launch."""

    def __init__(
        self,
        hummingbot_app: Any,
        is_script: bool | None = False,
        script_config: str | None = None,
        is_quickstart: bool | None = False,
    ) -> None:
        super().__init__()
        self._app = ref(hummingbot_app)  # the app keeps its listeners weakly; so do we the app
        self._is_script = bool(is_script)
        self._script_config = script_config
        self._is_quickstart = bool(is_quickstart)
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, _event: Any) -> None:
        task = asyncio.get_event_loop().create_task(self._start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self) -> None:
        app = self._app()
        if app is None or app.strategy_name is None:
            return  # nothing named at launch: the user types `start --v2 <conf>.yml`
        if not self._is_script:  # a V1 strategy config given with -f: saved as Hummingbot does
            write_config_to_yml(app.strategy_config_map, app.strategy_file_name, app.client_config_map)
        app.start(
            log_level=app.client_config_map.log_level,
            v2_conf=self._script_config if self._is_script else None,
            is_quickstart=self._is_quickstart,
        )
