"""A second exchange for multi-exchange tests: the Binance archive layout served from the URL
in ``LIQHEAT_TEST_MIRROR_URL``, stored under exchange id ``"mirror"`` (raw cache apart)."""

from __future__ import annotations

import os

from flows.settings import Settings
from flows.sources.binance.source import BinanceSource


class MirrorSource(BinanceSource):
    exchange = "mirror"


def from_settings(settings: Settings, *, base_url: str | None = None) -> MirrorSource:
    return MirrorSource(
        base_url or os.environ["LIQHEAT_TEST_MIRROR_URL"],
        settings.raw_dir / "mirror-exchange",
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
