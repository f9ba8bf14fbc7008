"""The Binance public-data archive layout: paths, checksum files and zip writing.

Used by the archive client (reading) and by the demo data writer and tests (writing), so the
layout lives in one place.

Path grammar (``data/futures/um/daily/...``)::

    data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip
    data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip
    data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-01.zip
    data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-01.zip
    data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip
    <any of the above>.CHECKSUM
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from datetime import date
from pathlib import Path

from flows.sources.files import atomic_write

UM_ROOT = "data/futures/um"
#: daily datasets with an interval folder (the dataset name is NOT in the file name)
INTERVAL_DATASETS = frozenset(
    {"klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines"}
)
DAILY_DATASETS = ("klines", "markPriceKlines", "metrics", "aggTrades")
MONTHLY_DATASETS = ("fundingRate",)
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}(_[A-Z0-9]{1,10})?$")


def daily_path(dataset: str, symbol: str, day: date, interval: str = "1m") -> str:
    """Return the archive path of one daily zip.

    Examples
    --------
    >>> daily_path("markPriceKlines", "BTCUSDT", date(2024, 1, 1))
    'data/futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip'
    >>> daily_path("metrics", "BTCUSDT", date(2024, 1, 1))
    'data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-01.zip'
    """
    stamp = day.isoformat()
    if dataset in INTERVAL_DATASETS:
        return f"{UM_ROOT}/daily/{dataset}/{symbol}/{interval}/{symbol}-{interval}-{stamp}.zip"
    return f"{UM_ROOT}/daily/{dataset}/{symbol}/{symbol}-{dataset}-{stamp}.zip"


def monthly_path(dataset: str, symbol: str, year: int, month: int) -> str:
    """Return the archive path of one monthly zip.

    Examples
    --------
    >>> monthly_path("fundingRate", "BTCUSDT", 2026, 4)
    'data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip'
    """
    return f"{UM_ROOT}/monthly/{dataset}/{symbol}/{symbol}-{dataset}-{year:04d}-{month:02d}.zip"


def checksum_line(data: bytes, zip_name: str) -> str:
    """Return the ``.CHECKSUM`` content for ``data`` (sha256sum format, two spaces)."""
    return f"{hashlib.sha256(data).hexdigest()}  {zip_name}\n"


def zip_csv(csv_text: str, member_name: str) -> bytes:
    """Return a deflated zip holding one CSV member."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member_name, csv_text)
    return buf.getvalue()


def write_archive_file(root: Path, archive_path: str, csv_text: str) -> Path:
    """Write one zip (single CSV member named like the zip) and its ``.CHECKSUM`` under
    ``root`` at ``archive_path``; return the zip's path."""
    target = root / archive_path
    zip_name = target.name
    data = zip_csv(csv_text, zip_name.removesuffix(".zip") + ".csv")
    atomic_write(target, data)
    atomic_write(target.with_name(zip_name + ".CHECKSUM"), checksum_line(data, zip_name).encode())
    return target
