"""Modules Hummingbot's quickstart imports by top-level name (`path_util`, `bin.hummingbot`).

`lyra-governor hummingbot` puts this folder on `PYTHONPATH`; nothing imports it as a package.
"""
