"""Resumable, checksum-verified downloads from signed links that may expire mid-way."""

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import requests
from tqdm import tqdm

from stagegate_client.api import Link

CHUNK_BYTES = 1024 * 1024
TIMEOUT_S = 60
# Tries per file: fresh links after expiry plus resumptions after dropped connections.
MAX_ATTEMPTS = 8


class ChecksumMismatch(Exception):
    pass


class UnsafeFilename(Exception):
    """The server named a file that is not one plain name: it could write outside the output folder."""


MAX_FILENAME_CHARS = 255
# The server's own rule for file names (registry/filenames.py): one path segment of plain characters.
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def safe_target(folder: Path, filename: object) -> Path:
    """`folder / filename`, if `filename` is a plain name the server could have stored; else UnsafeFilename.

    A server (or anyone impersonating one) that answers `../x` or `/etc/x` must not make the client write there.
    """
    if not isinstance(filename, str) or len(filename) > MAX_FILENAME_CHARS or ".." in filename \
            or not _PLAIN_FILENAME.fullmatch(filename):
        raise UnsafeFilename(f"the server named a file {filename!r}, which is not a plain file name; nothing "
                             "was written")
    return folder / filename


class DownloadFailed(Exception):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(fresh_link: Callable[[], Link], target: Path, *, expected_bytes: int, expected_sha256: str,
             verify: bool = True, progress: bool = True) -> Path:
    """Download to target via `target.part`, resuming with HTTP Range and asking for a new link on expiry.

    A finished file is checked against the server's sha256 before it takes its final name; a mismatch
    deletes the partial file so the next attempt starts clean.
    """
    if target.exists() and target.stat().st_size == expected_bytes and (not verify or _sha256(target) == expected_sha256):
        return target  # already complete
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > expected_bytes:
        part.unlink()
        have = 0
    bar = tqdm(total=expected_bytes, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress)
    if expected_bytes == 0:
        part.touch()
    link: Link | None = None
    try:
        attempts = 0
        while have < expected_bytes:
            if attempts == MAX_ATTEMPTS:
                raise DownloadFailed(f"{target.name}: gave up after {MAX_ATTEMPTS} attempts")
            attempts += 1
            if link is None:
                link = fresh_link()  # the server's refusal (revoked, withdrawn, quota) propagates as ServerRefused
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with requests.get(link.url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
                    if response.status_code == 403:
                        link = None  # the link expired between asking and using it: ask for a fresh one
                        continue
                    if response.status_code not in (200, 206):
                        raise DownloadFailed(f"{target.name}: storage answered HTTP {response.status_code}")
                    if have and response.status_code == 200:
                        have = 0  # the server ignored the range: start over
                        bar.reset(total=expected_bytes)
                    with open(part, "ab" if have else "wb") as out:
                        for chunk in response.iter_content(CHUNK_BYTES):
                            out.write(chunk)
                            have += len(chunk)
                            bar.update(len(chunk))
            except requests.RequestException:
                continue  # connection dropped: resume with Range from what was written, same link while it lasts
    finally:
        bar.close()
    if have != expected_bytes:
        raise DownloadFailed(f"{target.name}: got {have} bytes, expected {expected_bytes}")
    if verify:
        actual = _sha256(part)
        if actual != expected_sha256:
            part.unlink()
            raise ChecksumMismatch(f"{target.name}: sha256 {actual} does not match the published {expected_sha256}")
    part.replace(target)
    return target
