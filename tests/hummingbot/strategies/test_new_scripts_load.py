"""The five executor scripts load through Hummingbot's own loader: one strategy class and one
config class per file, both from the script, on the governed base, each with its example conf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

NEW_SCRIPTS = ["lyra_dca", "lyra_grid", "lyra_xemm", "lyra_dynamic_market_making", "lyra_bollinger"]


@pytest.mark.parametrize("name", NEW_SCRIPTS)
def test_script_loads_through_hummingbots_loader(name: str) -> None:
    from hummingbot.core.trading_core import TradingCore

    class Loader:  # TradingCore.load_v2_class only needs this one method of its instance
        def _load_strategy_config(self) -> dict[str, Any]:
            return {}

    strategy_class, config = TradingCore.load_v2_class(Loader(), name)  # type: ignore[arg-type]
    assert strategy_class.__module__ == f"scripts.{name}"
    assert type(config).__module__ == f"scripts.{name}"
    assert strategy_class.__mro__[1].__name__ == "GovernedStrategyV2Base"
    conf = Path(__file__).parents[3] / "conf" / "scripts" / f"conf_{name}.yml"
    assert conf.is_file()
