"""Resumable, checksum-verified downloads from signed links that may expire mid-way."""

import hashlib
import http.client
import queue
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from stagegate_client.api import Link

CHUNK_BYTES = 4 * 1024 * 1024
# Written and hashed a slice at a time: the hash reads each slice while the write has left it in the core's cache
# (sha256 ran at 1.8 GB/s on 1 MiB in cache and at 1.2-1.3 on a 16 MiB part read again later, on a 2-core Xeon).
SLICE_BYTES = 1024 * 1024
# Files this large come as ranges over several connections, as boto3's managed download does (8 MiB, 10 threads).
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
PART_BYTES = 16 * 1024 * 1024
CONNECTIONS = 3
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


def _sha256(path: Path, digest=None):
    """The sha256 of a file (or `digest` fed with it, returned to go on with)."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest


class _LinkExpired(Exception):
    pass


class _RangeIgnored(Exception):
    pass


class _Part:
    """The `.part` file: always a contiguous prefix of the file, every byte of it hashed in order, so that a
    download that stops anywhere resumes from its size."""

    def __init__(self, path: Path, expected_bytes: int, digest, bar) -> None:
        self.path, self.expected, self.digest, self.bar = path, expected_bytes, digest, bar
        self.have = path.stat().st_size if path.exists() else 0

    def restart(self) -> None:
        self.have = 0
        self.path.write_bytes(b"")
        self.bar.reset(total=self.expected)
        if self.digest is not None:
            self.digest = hashlib.sha256()

    def append(self, out, chunk) -> None:
        view = memoryview(chunk)
        for start in range(0, len(view), SLICE_BYTES):
            piece = view[start:start + SLICE_BYTES]
            out.write(piece)
            if self.digest is not None:
                self.digest.update(piece)
        self.have += len(view)
        self.bar.update(len(view))


def _status_checked(response, name: str) -> None:
    if response.status_code == 403:
        raise _LinkExpired  # the link expired between asking and using it
    if response.status_code not in (200, 206):
        raise DownloadFailed(f"{name}: storage answered HTTP {response.status_code}")


def _stream(url: str, part: _Part, name: str) -> None:
    """The rest of the file over one connection (Range from what the part holds)."""
    headers = {"Range": f"bytes={part.have}-"} if part.have else {}
    with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
        _status_checked(response, name)
        if part.have and response.status_code == 200:
            part.restart()  # the server ignored the range: start over
        with open(part.path, "ab") as out:
            for chunk in response.iter_content(CHUNK_BYTES):
                part.append(out, chunk)


_sessions = threading.local()


def _range(url: str, start: int, end: int, name: str, *, buffer: bytearray) -> memoryview:
    """Bytes start..end-1 of the file, read into the start of `buffer` (the caller's, used again)."""
    session = getattr(_sessions, "session", None) or requests.Session()
    _sessions.session = session  # one kept-alive connection per thread
    with session.get(url, headers={"Range": f"bytes={start}-{end - 1}"}, stream=True, timeout=TIMEOUT_S) as response:
        _status_checked(response, name)
        if response.status_code != 206:
            raise _RangeIgnored
        view = memoryview(buffer)[:end - start]
        readinto = _socket_readinto(response)
        got = 0
        try:
            while got < len(view):
                n = readinto(view[got:])
                if not n:
                    raise requests.ConnectionError(f"{name}: short range {start}-{end}")
                got += n
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as dropped:
            raise requests.ConnectionError(f"{name}: {dropped}") from dropped  # raw reads raise their own errors
        _keep_connection(response)
        return view


def _socket_readinto(response):
    """The body's reader that copies from the socket straight into the buffer it is given: http.client's, under
    urllib3. urllib3's own readinto reads into a new bytes object (http.client zero-fills a new buffer for it and
    copies that out) and then copies it into ours: three extra passes over every byte (a checked GiB took 1.98 s
    that way and 1.55 s this way on a 2-core Xeon). Where that layer is not there (another urllib3), urllib3's.
    (Neither decodes: requests reads raw bodies undecoded, and S3 sends weights as stored.)"""
    inner = getattr(response.raw, "_fp", None)
    return inner.readinto if isinstance(inner, http.client.HTTPResponse) else response.raw.readinto


def _keep_connection(response) -> None:
    """Hand a fully read response's connection back to the session's pool, as urllib3 does when its own reader
    reaches the end: read past it, requests would close it on leaving the `with`, and every range would pay a
    new connection (a new TLS handshake on an https link)."""
    inner = getattr(response.raw, "_fp", None)
    if isinstance(inner, http.client.HTTPResponse) and inner.isclosed():
        response.raw.release_conn()


def _parallel(url: str, part: _Part, name: str) -> None:
    """The rest of the file as PART_BYTES ranges over CONNECTIONS connections, as boto3's managed download
    fetches, but written and hashed in order as they arrive, so the part stays a hashed prefix. Each range is
    read into one of CONNECTIONS + 1 buffers used again and again: a new 16 MiB buffer a range meant faulting in
    4,096 fresh pages of memory each time."""
    buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(CONNECTIONS + 1):  # a bounded window: at most CONNECTIONS + 1 parts in memory
        buffers.put(bytearray(PART_BYTES))

    def fetch(start: int) -> tuple[bytearray, memoryview]:
        buffer = buffers.get()
        try:
            return buffer, _range(url, start, min(start + PART_BYTES, part.expected), name, buffer=buffer)
        except BaseException:
            buffers.put(buffer)
            raise

    def append(future) -> None:
        buffer, view = future.result()
        part.append(out, view)
        buffers.put(buffer)

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool, open(part.path, "ab") as out:
        window = []
        try:
            for start in range(part.have, part.expected, PART_BYTES):
                window.append(pool.submit(fetch, start))
                if len(window) > CONNECTIONS:
                    append(window.pop(0))
            while window:
                append(window.pop(0))
        finally:
            for future in window:
                future.cancel()


def download(fresh_link: Callable[[], Link], target: Path, *, expected_bytes: int, expected_sha256: str,
             verify: bool = True, progress: bool = True) -> Path:
    """Download to target via `target.part`, resuming with HTTP Range and asking for a new link on expiry.
    Large files come as parallel ranges (PARALLEL_MIN_BYTES and up); the sha256 is taken as the bytes are written.

    A finished file is checked against the server's sha256 before it takes its final name; a mismatch
    deletes the partial file so the next attempt starts clean.
    """
    if target.exists() and target.stat().st_size == expected_bytes and \
            (not verify or _sha256(target).hexdigest() == expected_sha256):
        return target  # already complete
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.with_name(target.name + ".part")
    if path.exists() and path.stat().st_size > expected_bytes:
        path.unlink()
    path.touch()
    have = path.stat().st_size
    bar = tqdm(total=expected_bytes, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress)
    # The hash follows the bytes as they are written: a resumed file's part is read once, first.
    part = _Part(path, expected_bytes, (_sha256(path) if have else hashlib.sha256()) if verify else None, bar)
    link: Link | None = None
    ranges = True
    try:
        attempts = 0
        while part.have < expected_bytes:
            if attempts == MAX_ATTEMPTS:
                raise DownloadFailed(f"{target.name}: gave up after {MAX_ATTEMPTS} attempts")
            attempts += 1
            if link is None:
                link = fresh_link()  # the server's refusal (revoked, withdrawn, quota) propagates as ServerRefused
            try:
                if ranges and expected_bytes - part.have >= PARALLEL_MIN_BYTES:
                    _parallel(link.url, part, target.name)
                else:
                    _stream(link.url, part, target.name)
            except _LinkExpired:
                link = None
            except _RangeIgnored:
                ranges = False  # this storage answers whole files only: one stream from here on
            except requests.RequestException:
                continue  # connection dropped: resume with Range from what was written, same link while it lasts
    finally:
        bar.close()
    have = part.have
    if have != expected_bytes:
        raise DownloadFailed(f"{target.name}: got {have} bytes, expected {expected_bytes}")
    if verify:
        actual = part.digest.hexdigest()
        if actual != expected_sha256:
            path.unlink()
            raise ChecksumMismatch(f"{target.name}: sha256 {actual} does not match the published {expected_sha256}")
    path.replace(target)
    return target
