"""Run any upstream Hummingbot V2 controller config under the Lyra governor.

Point `controllers_config` at your existing controller YAML files (as with Hummingbot's
v2_with_controllers script): their executors place orders through this strategy's `buy`/`sell`,
so every order passes the governor; closing orders (stop-loss, take-profit, time limit) are
proposed reduce-only and still pass in a gradual stop.

Run: `start --script lyra_controllers.py --conf conf_lyra_controllers.yml`.
"""

import os

from hummingbot.strategy.strategy_v2_base import StrategyV2ConfigBase
from pydantic import Field

from lyra_strategies import governed


class LyraControllersConfig(StrategyV2ConfigBase):
    script_file_name: str = os.path.basename(__file__)
    lyra_config: str = Field(default="", description="Lyra settings file (empty: LYRA_CONFIG or defaults)")
    bot_id: str = "lyra-controllers"


class LyraControllers(governed.GovernedStrategyV2Base):
    """StrategyV2Base already orchestrates controllers and executors; the governed base adds
    the governor under every order they place."""
