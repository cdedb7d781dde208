"""Lyra's `path_util` for Hummingbot's `bin/hummingbot_quickstart.py` on a pip-installed Hummingbot.

The quickstart's first import is `path_util` (a file of Hummingbot's source `bin/`, not in the
package). Hummingbot finds conf/, scripts/, logs/ and certs/ through `hummingbot.root_path()`, the
folder above the package: for a pip install that is site-packages. This module points it at the
Hummingbot root Lyra prepared (`LYRA_HUMMINGBOT_ROOT`, set by `lyra-governor hummingbot`) before
any of Hummingbot's client modules compute their paths, and puts that root first on `sys.path`
so `scripts.<name>` imports the root's scripts.
"""

from lyra_governor.hbclient import point_hummingbot_at_env_root

point_hummingbot_at_env_root()
