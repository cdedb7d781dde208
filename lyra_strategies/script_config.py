"""The config fields Lyra's governed executor scripts share, in Hummingbot's style: each script
still has its one config class (`script_file_name` and its own fields), subclassing one of these.

Why a script imports this module and never the classes by name: Hummingbot's loader
(`TradingCore.load_v2_class`) takes the first config class it finds in the script module's
namespace, alphabetically, so a base class imported into the script could be loaded in place of
the script's own config.
"""

from __future__ import annotations

from hummingbot.core.data_type.common import MarketDict
from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from pydantic import Field


class GovernedScriptConfig(StrategyV2ConfigBase):  # type: ignore[misc]
    """What every governed script reads: the Lyra settings file and the bot id the governor
    books its orders under (each script sets its own default)."""

    lyra_config: str = Field(default="", description="Lyra settings file (empty: LYRA_CONFIG or defaults)")
    bot_id: str = ""


class OneMarketConfig(GovernedScriptConfig):
    """A script that trades one pair on one connector."""

    connector_name: str = "binance_paper_trade"
    trading_pair: str = "BTC-USDT"

    def update_markets(self, markets: MarketDict) -> MarketDict:
        return markets.add_or_update(self.connector_name, self.trading_pair)
