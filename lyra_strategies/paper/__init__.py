"""Phase 3 offline: replay recorded or generated order books through Hummingbot's own paper
engine (MockPaperExchange under a back-test Clock), governed by Lyra, and report."""
