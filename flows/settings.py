"""Settings: one pydantic-settings class, environment prefix ``LIQHEAT_``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BINANCE_BASE_URL = "https://data.binance.vision"


class Settings(BaseSettings):
    """Environment-varying configuration. Run-varying inputs (dates, symbols) are flow
    parameters and CLI options, not settings."""

    model_config = SettingsConfigDict(env_prefix="LIQHEAT_", extra="ignore", env_file=None)

    home: Path = Field(default=Path("./data"), description="holds all liqheat state")
    binance_base_url: str = Field(
        default=DEFAULT_BINANCE_BASE_URL, description="Binance public-data archive root"
    )
    binance_api_url: str = Field(
        default="https://fapi.binance.com", description="Binance USD-M REST API root (top-up)"
    )
    okx_api_url: str = Field(default="https://www.okx.com", description="OKX REST API root")
    okx_static_url: str = Field(
        default="https://static.okx.com", description="OKX historical-data files root"
    )
    bybit_public_url: str = Field(
        default="https://public.bybit.com", description="Bybit public-data (trade files) root"
    )
    bybit_api_url: str = Field(default="https://api.bybit.com", description="Bybit REST API root")
    symbols: list[str] = Field(default=["BTCUSDT", "ETHUSDT"], description="default symbols")
    backfill_days: int = Field(default=7, ge=0, description="nightly gap-backfill window")
    http_timeout_s: float = Field(default=30.0, gt=0)
    http_retries: int = Field(default=4, ge=0)
    download_deadline_s: float = Field(
        default=600.0,
        gt=0,
        description="overall deadline of one archive download, retries included",
    )
    model_days: int = Field(default=30, ge=1, description="history the model is run over")
    max_downloads: int = Field(
        default=1000,
        ge=0,
        description="ingest/backfill ranges needing more files than this ask for --yes",
    )
    store_levels: bool = Field(
        default=False,
        description="also store the raw modelled levels (liq_levels, ~65k rows per symbol-day)",
    )
    model_profile: str | None = Field(
        default=None, description="calibrated model profile used by model/nightly (None: defaults)"
    )
    lock_wait_s: float = Field(
        default=60.0, ge=0, description="how long a run waits for another run to finish"
    )
    alert_distance_pct: float = Field(
        default=3.0, ge=0, description="clusters at most this % from the price raise alerts"
    )
    alert_min_usd: float = Field(
        default=1_000_000.0, ge=0, description="smallest cluster (USD) that raises an alert"
    )
    alert_min_share: float = Field(
        default=0.05, ge=0, le=1, description="smallest cluster share of its side that alerts"
    )
    alert_webhook: str | None = Field(
        default=None, description="URL that gets one JSON POST per run with alerts"
    )
    alert_timeout_s: float = Field(default=10.0, gt=0, description="webhook POST time limit")

    @property
    def db_path(self) -> Path:
        return self.home / "liqheat.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def site_dir(self) -> Path:
        return self.home / "site"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"


def configure_prefect_home(settings: Settings, *, create: bool = True) -> None:
    """Keep Prefect's own state under ``$LIQHEAT_HOME/prefect`` unless the user set
    ``PREFECT_HOME`` or ``PREFECT_API_URL``. Must run before prefect is imported.
    ``create=False`` only points Prefect there (nothing is created on disk).

    The temporary server Prefect starts for a run migrates its database on first use, which
    can take longer than Prefect's default 20 s wait on a small machine: allow 180 s.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if "PREFECT_HOME" in os.environ or "PREFECT_API_URL" in os.environ:
        return
    home = settings.prefect_home.resolve()
    if create:
        home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
