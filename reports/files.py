"""Files of the site written all-or-nothing: pages staged under temporary names and renamed
into place together, single files replaced atomically, and file-name-safe symbol folders."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

STATIC_DIR = "static"
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Staged:
    """Files rendered to temporary names, renamed into place together at the end."""

    moves: list[tuple[Path, Path]] = field(default_factory=list)

    def write(self, target: Path, data: str | bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        self.moves.append((tmp, target))
        return target

    def commit(self) -> None:
        for tmp, target in self.moves:
            os.replace(tmp, target)
        self.moves.clear()

    def drop_under(self, folder: Path) -> None:
        """Forget (and delete) the staged files under ``folder`` (a failed symbol)."""
        keep = []
        for tmp, target in self.moves:
            if folder in target.parents:
                tmp.unlink(missing_ok=True)
            else:
                keep.append((tmp, target))
        self.moves[:] = keep

    def discard(self) -> None:
        for tmp, _ in self.moves:
            tmp.unlink(missing_ok=True)
        self.moves.clear()


def safe_component(name: str) -> str:
    """Return a file-name-safe version of ``name`` (a symbol) for use as a path component.

    Plain names are kept; anything else has unsafe characters replaced and a short hash of
    the original appended, so different names never collide.

    >>> safe_component("BTCUSDT")
    'BTCUSDT'
    >>> safe_component("../x")[:5]
    '___x-'
    """
    cleaned = re.sub(r"^\.+", lambda m: "_" * len(m.group()), _SAFE_RE.sub("_", name))
    if cleaned == name and name and name != STATIC_DIR:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:40] or 'symbol'}-{digest}"


def replace_bytes(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
