"""Lyra's stand-in for Hummingbot's source `bin` package (see `bin.hummingbot`)."""
