"""ArchiveClient against a real HTTP mirror on 127.0.0.1 (and file://), with injected faults."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import date
from pathlib import Path

import pytest
from tenacity import RetryCallState, Retrying

from flows.sources.binance.client import (
    ArchiveClient,
    BadChecksumFileError,
    ChecksumMismatchError,
    NotPublishedError,
    _Transient,
    parse_checksum,
)
from flows.sources.binance.paths import checksum_line, daily_path, write_archive_file
from flows.sources.errors import BadZipError, HttpError, NetworkError
from flows.sources.files import atomic_write, open_csv_member, read_csv_member
from tests.httpmirror import NOT_FOUND_BODY, Fault, refused_url, serve_mirror

DAY = date(2024, 1, 1)
PATH = daily_path("klines", "BTCUSDT", DAY)
ZIP_NAME = PATH.rsplit("/", 1)[-1]
CSV = "1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0\n"


@pytest.fixture
def mirror_root(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    write_archive_file(root, PATH, CSV)
    return root


def client(base_url: str, tmp_path: Path, **kw: object) -> ArchiveClient:
    opts: dict[str, object] = {"retries": 3, "backoff_s": 0.001, "backoff_max_s": 0.01}
    opts.update(kw)
    return ArchiveClient(base_url, tmp_path / "raw", **opts)  # type: ignore[arg-type]


def write_raw_zip(root: Path, path: str, data: bytes) -> None:
    """Put arbitrary zip bytes at ``path`` with a matching (valid) .CHECKSUM."""
    target = root / path
    atomic_write(target, data)
    atomic_write(
        target.with_name(target.name + ".CHECKSUM"), checksum_line(data, target.name).encode()
    )


def zip_members(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


# -- .CHECKSUM parsing ---------------------------------------------------------------------
def test_parse_checksum_accepts_sha256sum_lines() -> None:
    digest = "ab" * 32
    assert parse_checksum(f"{digest}  {ZIP_NAME}\n", ZIP_NAME) == digest
    assert parse_checksum(f"{digest.upper()}  {ZIP_NAME}", ZIP_NAME) == digest  # no newline
    assert parse_checksum(f"{digest} *{ZIP_NAME}\r\n".encode(), ZIP_NAME) == digest


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (NOT_FOUND_BODY.decode(), "not a sha256sum line"),
        ("<html><body>404 Not Found</body></html>", "not a sha256sum line"),
        ("", "<empty>"),
        ("ab" * 31 + "  " + ZIP_NAME, "not a sha256sum line"),
        ("zz" * 32 + "  " + ZIP_NAME, "not a sha256sum line"),
        ("ab" * 32 + "  BTCUSDT-1m-2024-01-02.zip", "expected"),
        ("ab" * 32 + "  " + ZIP_NAME + "\n" + "cd" * 32 + "  other.zip\n", "not a sha256sum"),
        ("ab" * 32 + "  ../" + ZIP_NAME, "not a sha256sum line"),
    ],
)
def test_parse_checksum_rejects_anything_else(body: str, message: str) -> None:
    with pytest.raises(BadChecksumFileError, match=r"bad \.CHECKSUM") as err:
        parse_checksum(body, ZIP_NAME)
    assert message in str(err.value)


# -- fetching and verification -------------------------------------------------------------
def test_fetch_verified_downloads_once_then_uses_cache(mirror_root: Path, tmp_path: Path) -> None:
    with serve_mirror(mirror_root) as mirror, client(mirror.base_url, tmp_path) as c:
        first = c.fetch_verified(PATH)
        second = c.fetch_verified(PATH)
    assert first.downloaded
    assert not second.downloaded
    assert first.path == tmp_path / "raw" / PATH
    assert first.sha256 == hashlib.sha256((mirror_root / PATH).read_bytes()).hexdigest()
    assert mirror.hits[PATH] == 1
    assert mirror.hits[PATH + ".CHECKSUM"] == 2  # the cache is re-verified every time
    assert not list((tmp_path / "raw").rglob("*.part"))


@pytest.mark.parametrize("status", [503, 500, 429])
def test_retryable_status_then_success(mirror_root: Path, tmp_path: Path, status: int) -> None:
    faults = {PATH: [Fault(status=status)], PATH + ".CHECKSUM": [Fault(status=status, times=2)]}
    with serve_mirror(mirror_root, faults) as mirror, client(mirror.base_url, tmp_path) as c:
        got = c.fetch_verified(PATH)
    assert got.downloaded
    assert mirror.hits[PATH + ".CHECKSUM"] == 3
    assert mirror.hits[PATH] == 2


def test_dropped_and_truncated_responses_are_retried(mirror_root: Path, tmp_path: Path) -> None:
    faults = {PATH: [Fault(drop=True), Fault(truncate=40)]}
    with serve_mirror(mirror_root, faults) as mirror, client(mirror.base_url, tmp_path) as c:
        got = c.fetch_verified(PATH)
    assert mirror.hits[PATH] == 3
    assert got.path.read_bytes() == (mirror_root / PATH).read_bytes()


def test_persistent_503_gives_up_after_bounded_retries(mirror_root: Path, tmp_path: Path) -> None:
    faults = {PATH + ".CHECKSUM": [Fault(status=503, times=100)]}
    with (
        serve_mirror(mirror_root, faults) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(NetworkError, match=r"network: HTTP 503 \(4 tries\)"),
    ):
        c.fetch_verified(PATH)
    assert mirror.hits[PATH + ".CHECKSUM"] == 4
    assert mirror.hits[PATH] == 0


def test_404_is_missing_and_not_retried(mirror_root: Path, tmp_path: Path) -> None:
    other = daily_path("klines", "BTCUSDT", date(2024, 1, 2))
    with (
        serve_mirror(mirror_root) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(NotPublishedError, match="404 not published"),
    ):
        c.fetch_verified(other)
    assert mirror.hits[other + ".CHECKSUM"] == 1
    assert mirror.hits[other] == 0


def test_zip_404_after_checksum_is_missing(mirror_root: Path, tmp_path: Path) -> None:
    with (
        serve_mirror(mirror_root, {PATH: [Fault(status=404)]}) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(NotPublishedError),
    ):
        c.fetch_verified(PATH)
    assert mirror.hits[PATH] == 1


def test_403_is_not_retried(mirror_root: Path, tmp_path: Path) -> None:
    faults = {PATH + ".CHECKSUM": [Fault(status=403, times=10)]}
    with (
        serve_mirror(mirror_root, faults) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(HttpError, match="HTTP 403"),
    ):
        c.fetch_verified(PATH)
    assert mirror.hits[PATH + ".CHECKSUM"] == 1


def test_html_page_instead_of_checksum_is_rejected(mirror_root: Path, tmp_path: Path) -> None:
    faults = {PATH + ".CHECKSUM": [Fault(body=b"<html><title>Not Found</title></html>")]}
    with (
        serve_mirror(mirror_root, faults) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(BadChecksumFileError),
    ):
        c.fetch_verified(PATH)
    assert mirror.hits[PATH] == 0


def test_checksum_mismatch_redownloads_once(mirror_root: Path, tmp_path: Path) -> None:
    good = (mirror_root / PATH).read_bytes()
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    with (
        serve_mirror(mirror_root, {PATH: [Fault(body=bad)]}) as mirror,
        client(mirror.base_url, tmp_path) as c,
    ):
        got = c.fetch_verified(PATH)
    assert mirror.hits[PATH] == 2
    assert got.path.read_bytes() == good


def test_checksum_mismatch_twice_fails_and_caches_nothing(
    mirror_root: Path, tmp_path: Path
) -> None:
    with (
        serve_mirror(mirror_root, {PATH: [Fault(body=b"PK\x03\x04junk", times=5)]}) as mirror,
        client(mirror.base_url, tmp_path) as c,
        pytest.raises(ChecksumMismatchError),
    ):
        c.fetch_verified(PATH)
    assert mirror.hits[PATH] == 2
    assert not (tmp_path / "raw" / PATH).exists()
    assert not list((tmp_path / "raw").rglob("*.part"))


def test_republished_file_replaces_cached_copy(mirror_root: Path, tmp_path: Path) -> None:
    with serve_mirror(mirror_root) as mirror, client(mirror.base_url, tmp_path) as c:
        c.fetch_verified(PATH)
        write_archive_file(mirror_root, PATH, CSV.replace(",10,", ",11,"))
        again = c.fetch_verified(PATH)
    assert again.downloaded
    assert again.republished
    assert mirror.hits[PATH] == 2
    assert b",11," in read_csv_member(again.path)


def test_corrupted_cache_is_downloaded_again(mirror_root: Path, tmp_path: Path) -> None:
    with serve_mirror(mirror_root) as mirror, client(mirror.base_url, tmp_path) as c:
        first = c.fetch_verified(PATH)
        first.path.write_bytes(b"garbage")
        again = c.fetch_verified(PATH)
    assert again.downloaded
    assert mirror.hits[PATH] == 2


def test_connection_refused_and_fail_fast(tmp_path: Path) -> None:
    with client(refused_url(), tmp_path, retries=1, give_up_after=2) as c:
        for _ in range(2):
            with pytest.raises(NetworkError, match="network: connection refused"):
                c.fetch_verified(PATH)
        with pytest.raises(NetworkError, match="unreachable"):
            c.fetch_verified(PATH)


def test_file_url(mirror_root: Path, tmp_path: Path) -> None:
    with client(mirror_root.resolve().as_uri(), tmp_path) as c:
        got = c.fetch_verified(PATH)
        assert read_csv_member(got.path).decode() == CSV
        with pytest.raises(NotPublishedError):
            c.fetch_verified(daily_path("klines", "BTCUSDT", date(2024, 1, 2)))


def test_bad_base_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        ArchiveClient("ftp://example.com", tmp_path)


# -- zip members ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"a.csv": CSV, "b.csv": CSV}, "2 members"),
        ({"../x.csv": CSV}, "bad member name"),
        ({"sub/x.csv": CSV}, "bad member name"),
        ({"x.txt": CSV}, "bad member name"),
        ({}, "0 members"),
    ],
)
def test_zip_member_rules(tmp_path: Path, members: dict[str, str], message: str) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(zip_members(members))
    with pytest.raises(BadZipError, match=message):
        read_csv_member(path)


def test_zip_member_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(zip_members({"x.csv": CSV * 100}))
    with pytest.raises(BadZipError, match="too large"):
        read_csv_member(path, max_bytes=len(CSV) * 10)
    assert read_csv_member(path, max_bytes=len(CSV) * 100) == (CSV * 100).encode()


def test_corrupt_and_truncated_zips(tmp_path: Path) -> None:
    good = zip_members({"x.csv": CSV * 50})
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(BadZipError, match="corrupt zip"):
        read_csv_member(truncated)
    flipped = bytearray(good)
    flipped[40] ^= 0xFF  # inside the deflated data: CRC or inflate error
    corrupt = tmp_path / "c.zip"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(BadZipError, match="corrupt zip"):
        read_csv_member(corrupt)
    not_zip = tmp_path / "n.zip"
    not_zip.write_bytes(b"<html>oops</html>")
    with pytest.raises(BadZipError), open_csv_member(not_zip):
        pass


def test_server_errors_do_not_trip_the_fail_fast_breaker(mirror_root: Path, tmp_path: Path) -> None:
    """A file answering 503 forever fails alone: the archive is reachable, so later files are
    still fetched (only connection failures make the client give up early)."""
    faults = {PATH + ".CHECKSUM": [Fault(status=503, times=100)]}
    other = daily_path("klines", "BTCUSDT", date(2024, 1, 2))
    write_archive_file(mirror_root, other, CSV.replace("1704067200000", "1704153600000"))
    with (
        serve_mirror(mirror_root, faults) as mirror,
        client(mirror.base_url, tmp_path, retries=1, give_up_after=1) as c,
    ):
        for _ in range(3):
            with pytest.raises(NetworkError, match=r"HTTP 503 \(2 tries\)"):
                c.fetch_verified(PATH)
        assert c.fetch_verified(other).downloaded
    assert mirror.hits[PATH + ".CHECKSUM"] == 6


def test_retry_after_is_honoured_up_to_the_cap(mirror_root: Path, tmp_path: Path) -> None:
    faults = {PATH: [Fault(status=429, headers={"Retry-After": "0.05"})]}
    with (
        serve_mirror(mirror_root, faults) as mirror,
        client(mirror.base_url, tmp_path, backoff_max_s=0.2) as c,
    ):
        assert c.fetch_verified(PATH).downloaded
    assert mirror.hits[PATH] == 2

    def wait_after(exc: BaseException, attempt: int = 1) -> float:
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        state.set_exception((type(exc), exc, None))
        return c._wait(state)

    assert 0.05 <= wait_after(_Transient("HTTP 429", retry_after=0.05)) <= 0.051
    assert wait_after(_Transient("HTTP 429", retry_after=3600)) == 0.2  # capped
    assert wait_after(_Transient("HTTP 503")) <= 0.002  # backoff_s + jitter
    assert 0.008 <= wait_after(_Transient("HTTP 503"), attempt=4) <= 0.009
