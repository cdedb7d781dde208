"""Run any upstream Hummingbot V2 controller config under the Lyra governor.

Point `controllers_config` at your existing controller YAML files, as with Hummingbot's
v2_with_controllers script. Hummingbot's own loader reads them
(`StrategyV2ConfigBase.load_controller_configs`): each file is looked up in
`<root>/conf/controllers/`, names its `controller_type` and `controller_name`, and the module
`controllers.<controller_type>.<controller_name>` is imported, so `<root>/controllers/` must be
importable. `<root>` is Hummingbot's `root_path()`: the directory that holds the `hummingbot`
package (a source checkout's top folder, where `controllers/` and `conf/` already are; for a pip
install, the site-packages folder, or put your `controllers` package on PYTHONPATH and your
YAML files in `<site-packages>/conf/controllers/`).

The controllers' executors place their orders through this strategy's `buy`/`sell`, so every
order passes the governor: a denied one is never sent and the executor takes its failed-order
path; closing orders (stop-loss, take-profit, time limit) are proposed reduce-only and still
pass in a gradual stop.

Run: `start --v2 conf_lyra_controllers.yml`.
Headless (CONFIG_PASSWORD set): `lyra-governor hummingbot --headless --v2 conf_lyra_controllers.yml`.
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
    """StrategyV2Base already runs the controllers and their executors; the governed base adds
    the governor under every order they place. The script itself proposes nothing."""

    def create_actions_proposal(self):
        return []

    def stop_actions_proposal(self):
        return []
