"""Lyra strategy logic: Hummingbot-independent pure functions plus the governed StrategyV2Base mixin.

Pure modules (quotes, arbitrage, rebalancing) import neither Hummingbot nor I/O libraries;
`governed` imports Hummingbot and is only used inside a Hummingbot process or test.
"""
