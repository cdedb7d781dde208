"""News sentiment (commissioning phase 5): timestamped headlines scored with VADER, aggregated
per asset over a window, shown to the council as data and in `status`.

Sources: a local JSONL file (`{"ts": ISO-8601 or epoch seconds, "title": ..., "source": ...,
"assets": [optional]}` per line; Lyra ships `lyra_governor/data/sample_headlines.jsonl`) and/or
RSS/Atom feeds (feedparser, fetched with a bounded httpx GET; a feed may also be a local file).
VADER is a lexicon and rule model: deterministic, offline, no weights to download.

What it is not: an input to any deterministic pre-trade check. Headlines are untrusted text; they
reach OpenRouter voters only inside the <data> document, and a broken or missing feed means no
sentiment, never a denial. `score_headlines` and `summarise` are pure; `SentimentFeed` is the
adapter that reads the sources and refreshes in a background thread so a consultation never
waits on a file or the network.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).with_name("data") / "sample_headlines.jsonl"
FEED_TIMEOUT_S = 5.0
MAX_HEADLINES = 5000
DEFAULT_ALIASES: dict[str, list[str]] = {
    "BTC": ["bitcoin", "btc"],
    "ETH": ["ethereum", "ether", "eth"],
    "SOL": ["solana", "sol"],
    "XRP": ["xrp", "ripple"],
    "ADA": ["cardano", "ada"],
    "DOGE": ["dogecoin", "doge"],
}


@dataclass(frozen=True)
class Headline:
    ts: float
    title: str
    source: str = ""
    assets: tuple[str, ...] = ()  # as given by the source; else matched from the title
    score: float = 0.0  # VADER compound, -1 .. 1


class HeadlineView(BaseModel):
    model_config = ConfigDict(frozen=True)

    ts: float
    title: str = Field(max_length=300)
    source: str = ""
    score: float


class SentimentSummary(BaseModel):
    """One asset's news over the window: data for the voters, never a check."""

    model_config = ConfigDict(frozen=True)

    asset: str
    window_s: float
    window_end: float
    headlines: int = 0
    mean_score: float | None = None  # None: fewer than min_headlines in the window
    positive: int = 0  # compound >= 0.05 (VADER's convention)
    negative: int = 0  # compound <= -0.05
    latest: list[HeadlineView] = Field(default_factory=list)  # newest first, at most 5

    @property
    def label(self) -> str:
        if self.mean_score is None:
            return "insufficient"
        return "negative" if self.mean_score <= -0.05 else "positive" if self.mean_score >= 0.05 else "neutral"


# --- pure ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score(text: str) -> float:
    """VADER's compound score of one headline (deterministic, -1 .. 1)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def match_assets(title: str, aliases: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    words = set(re.findall(r"[a-z0-9]+", title.lower()))
    return tuple(sorted(asset for asset, names in aliases.items() if any(n.lower() in words for n in names)))


def score_headlines(
    raw: Iterable[Headline], aliases: Mapping[str, Sequence[str]] = DEFAULT_ALIASES
) -> list[Headline]:
    out = []
    for h in raw:
        assets = tuple(a.upper() for a in h.assets) or match_assets(h.title, aliases)
        out.append(Headline(ts=h.ts, title=h.title, source=h.source, assets=assets, score=round(score(h.title), 4)))
    out.sort(key=lambda h: h.ts)
    return out[-MAX_HEADLINES:]


def summarise(
    headlines: Sequence[Headline], asset: str, end: float, window_s: float, min_headlines: int = 3
) -> SentimentSummary:
    inside = [h for h in headlines if asset.upper() in h.assets and end - window_s <= h.ts <= end]
    mean = sum(h.score for h in inside) / len(inside) if len(inside) >= min_headlines else None
    return SentimentSummary(
        asset=asset.upper(),
        window_s=window_s,
        window_end=end,
        headlines=len(inside),
        mean_score=None if mean is None else round(mean, 4),
        positive=sum(1 for h in inside if h.score >= 0.05),
        negative=sum(1 for h in inside if h.score <= -0.05),
        latest=[HeadlineView(ts=h.ts, title=h.title, source=h.source[:64], score=h.score) for h in inside[::-1][:5]],
    )


def parse_ts(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()
    return None


def parse_jsonl(text: str) -> tuple[list[Headline], int]:
    """(headlines, lines skipped). A line without a timestamp or a title is skipped, not fatal."""
    out: list[Headline] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        ts = parse_ts(doc.get("ts")) if isinstance(doc, dict) else None
        title = doc.get("title") if isinstance(doc, dict) else None
        if ts is None or not isinstance(title, str) or not title.strip():
            skipped += 1
            continue
        assets = doc.get("assets")
        out.append(
            Headline(
                ts=ts,
                title=title.strip()[:300],
                source=str(doc.get("source") or "")[:64],
                assets=tuple(str(a) for a in assets) if isinstance(assets, list) else (),
            )
        )
    return out, skipped


def parse_feed(content: bytes, source: str) -> list[Headline]:
    """RSS/Atom entries (feedparser) with a published/updated time and a title."""
    import feedparser

    parsed = feedparser.parse(content)
    out = []
    for entry in parsed.entries:
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        title = entry.get("title")
        if stamp is None or not isinstance(title, str) or not title.strip():
            continue
        year, month, day, hour, minute, second = (int(x) for x in stamp[:6])
        ts = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()
        out.append(Headline(ts=ts, title=title.strip()[:300], source=source[:64]))
    return out


# --- adapter ---------------------------------------------------------------------------------


class SentimentFeed:
    """Reads the configured sources; `summary` is a lookup over the last refresh. A refresh
    older than `refresh_s` starts a new one in a daemon thread (the caller never waits)."""

    def __init__(
        self,
        jsonl: Sequence[Path] = (),
        feeds: Sequence[str] = (),
        window_s: float = 21_600,
        min_headlines: int = 3,
        window_end: str = "now",
        refresh_s: float = 300,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.jsonl = list(jsonl)
        self.feeds = list(feeds)
        self.window_s = window_s
        self.min_headlines = min_headlines
        self.window_end = window_end
        self.refresh_s = refresh_s
        self.aliases = dict(aliases or DEFAULT_ALIASES)
        self.headlines: list[Headline] = []
        self.problems: list[str] = []
        self.refreshed_at = float("-inf")
        self._refreshing = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> SentimentFeed | None:
        s = settings.consensus.sentiment
        if not s.enabled:
            return None
        paths = [SAMPLE if p == "sample" else Path(p) for p in s.jsonl]
        feed = cls(paths, s.feeds, s.window_s, s.min_headlines, s.window_end, s.refresh_s, s.assets or None)
        feed.refresh()  # once, synchronously, at start-up (not on the order path)
        return feed

    def refresh(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            raw: list[Headline] = []
            problems: list[str] = []
            for path in self.jsonl:
                try:
                    found, skipped = parse_jsonl(path.read_text(encoding="utf-8"))
                except OSError as exc:
                    problems.append(f"{path}: {exc.strerror or type(exc).__name__}")
                    continue
                raw += found
                if skipped:
                    problems.append(f"{path}: {skipped} line(s) without a timestamp or title skipped")
            if self.feeds:
                import httpx  # here, not at the top: every CLI command and bot imports this module via models

            for url in self.feeds:
                try:
                    content = (
                        Path(url).read_bytes()
                        if not url.startswith(("http://", "https://"))
                        else httpx.get(url, timeout=FEED_TIMEOUT_S, follow_redirects=True).content
                    )
                    raw += parse_feed(content, url)
                except (OSError, httpx.HTTPError) as exc:
                    problems.append(f"{url}: {type(exc).__name__}")
            self.headlines = score_headlines(raw, self.aliases)
            self.problems = problems
            self.refreshed_at = time.monotonic()
        finally:
            self._refreshing.release()

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self.refreshed_at >= self.refresh_s and not self._refreshing.locked():
            threading.Thread(target=self.refresh, name="lyra-sentiment", daemon=True).start()

    def end(self, now: float) -> float:
        if self.window_end == "latest" and self.headlines:
            return self.headlines[-1].ts
        return now

    def summary(self, asset: str, now: float) -> SentimentSummary:
        self._maybe_refresh()
        return summarise(self.headlines, asset, self.end(now), self.window_s, self.min_headlines)

    def overview(self, now: float) -> dict[str, Any]:
        """Per asset seen in the window: headline count, mean score, label (for `status`)."""
        end = self.end(now)
        assets = sorted({a for h in self.headlines if end - self.window_s <= h.ts <= end for a in h.assets})
        out: dict[str, Any] = {}
        for asset in assets:
            s = summarise(self.headlines, asset, end, self.window_s, self.min_headlines)
            out[asset] = {"headlines": s.headlines, "mean_score": s.mean_score, "label": s.label,
                          "negative": s.negative, "positive": s.positive}  # fmt: skip
        return {"window_s": self.window_s, "window_end": end, "headlines": len(self.headlines), "assets": out,
                "problems": self.problems}  # fmt: skip
