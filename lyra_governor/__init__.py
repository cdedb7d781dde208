"""Lyra governor: the one gate every order of a Lyra strategy passes before it reaches an exchange.

The package never imports Hummingbot at module level, so the CLI, the status server and the
commissioning runner work on a machine without Hummingbot installed.
"""

__version__ = "0.1.0"
