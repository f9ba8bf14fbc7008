"""Static assets of the site: the Vega/Vega-Lite/vega-embed bundle (built once by vl-convert
and cached in the environment), the stylesheet and the embed script, written under
``site_dir/static`` only when their bytes changed."""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import suppress
from functools import lru_cache
from importlib import resources
from pathlib import Path

import vl_convert

from reports.files import STATIC_DIR, replace_bytes

#: Vega-Lite version of the bundled JavaScript (matches the Altair schema)
VL_VERSION = "6.4"
BUNDLE_NAME = "vega-bundle.js"


def bundle_header(vl_version: str = VL_VERSION) -> str:
    """First line of the bundled script: names the library versions it contains."""
    embed, vega = vl_convert.get_vega_embed_version(), vl_convert.get_vega_version()
    return f"/* vega-embed {embed}, vega {vega}, vega-lite {vl_version}: bundled by vl-convert */"


@lru_cache(maxsize=2)
def vega_bundle(vl_version: str = VL_VERSION) -> str:
    """Vega, Vega-Lite and vega-embed as one classic (non-module) script defining
    ``window.vegaEmbed``; built by vl-convert from its bundled sources (takes ~2 s, cached).

    Chromium does not load ES modules from ``file://``, so this must stay a classic script.
    The bundle is wrapped in a function so its top-level names stay out of the page scope.
    """
    header = bundle_header(vl_version)
    cache = _bundle_cache(header)
    with suppress(OSError):
        text = cache.read_text(encoding="utf-8")
        if text.startswith(header + "\n"):
            return text
    # the default snippet assigns vegaEmbed, vega and vegaLite to window
    bundle = vl_convert.javascript_bundle(vl_version=vl_version)  # type: ignore[call-arg]
    text = f"{header}\n(function () {{\n{bundle}\n}})();\n"
    with suppress(OSError):  # best effort: a read-only environment builds it every time
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_name(f"{cache.name}.{os.getpid()}.part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, cache)
    return text


def _bundle_cache(header: str) -> Path:
    """Where the built bundle is kept between runs: inside the environment (it depends only
    on the installed vl-convert), named by a hash of its version header."""
    digest = hashlib.sha256(header.encode()).hexdigest()[:16]
    return Path(sys.prefix) / "var" / "liqheat" / f"vega-bundle-{digest}.js"


def _package_text(name: str) -> str:
    return (resources.files("reports") / "static" / name).read_text(encoding="utf-8")


def write_static(site_dir: Path) -> list[Path]:
    """Write the JavaScript bundle, stylesheet and embed script under ``site_dir/static``.

    Files already holding the same bytes are left alone (so rebuilds are cheap).
    """
    out = site_dir / STATIC_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bundle_path = out / BUNDLE_NAME
    header = bundle_header().encode("utf-8")
    current = False
    with suppress(OSError), bundle_path.open("rb") as fh:
        current = fh.read(len(header)) == header
    if not (bundle_path.exists() and current):
        replace_bytes(bundle_path, vega_bundle().encode("utf-8"))
    written.append(bundle_path)
    for name in ("liqheat.css", "liqheat.js"):
        target = out / name
        data = _package_text(name).encode("utf-8")
        if not target.exists() or target.read_bytes() != data:
            replace_bytes(target, data)
        written.append(target)
    return written
