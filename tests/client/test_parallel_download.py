"""The client's large-file path (#22, goal 4): parallel ranges written and hashed in order, so the `.part` file
is always a hashed prefix. The thresholds are lowered here to run it on the test's small file; the result must
be the single-stream path's, byte for byte, also after an expired link and a dropped range."""

import pytest
import requests
from stagegate_client import download

from tests.client.test_download_model import DATA, _run, granted  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PART = 8 * 1024


@pytest.fixture
def ranges(monkeypatch):
    """Parallel from 16 KiB, in 8 KiB parts; records the Range header of every part fetched."""
    monkeypatch.setattr(download, "PARALLEL_MIN_BYTES", 2 * PART)
    monkeypatch.setattr(download, "PART_BYTES", PART)
    seen: list[str] = []
    real = requests.Session.get

    def spy(self, url, **kwargs):
        seen.append((kwargs.get("headers") or {}).get("Range", ""))
        return real(self, url, **kwargs)

    monkeypatch.setattr(requests.Session, "get", spy)
    return seen


def test_a_large_file_comes_in_parallel_ranges_and_equals_the_published_bytes(granted, size, ranges):  # noqa: F811
    assert len(DATA) > 4 * PART
    assert _run(granted, size) == 0
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert f"bytes=0-{PART - 1}" in ranges and f"bytes={PART}-{2 * PART - 1}" in ranges
    assert len([r for r in ranges if r]) == -(-len(DATA) // PART)  # every part once


def test_a_partial_file_resumes_with_ranges_from_its_end(granted, size, ranges):  # noqa: F811
    granted["out"].mkdir()
    (granted["out"] / "model.safetensors.part").write_bytes(DATA[:3 * PART])
    assert _run(granted, size) == 0
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert min(int(r.split("=")[1].split("-")[0]) for r in ranges if r) == 3 * PART


@pytest.mark.parametrize("failure", [download._LinkExpired, requests.ConnectionError])
def test_an_expired_link_or_a_dropped_range_midway_resumes_from_the_hashed_prefix(granted, size, ranges,  # noqa: F811
                                                                               monkeypatch, failure):
    real = download._range
    failed = []

    def once(url, start, end, name, **kwargs):
        if start == 3 * PART and not failed:
            failed.append(start)
            raise failure("the link ran out" if failure is download._LinkExpired else "connection reset")
        return real(url, start, end, name, **kwargs)

    monkeypatch.setattr(download, "_range", once)
    assert _run(granted, size) == 0
    assert failed and (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert not (granted["out"] / "model.safetensors.part").exists()


@pytest.mark.parametrize("reader", ["http.client", "urllib3"])
def test_a_connection_dropped_inside_a_raw_read_resumes_too(granted, size, ranges, monkeypatch, reader):  # noqa: F811
    """A range is read from the socket by http.client under urllib3 (urllib3's own reader where that layer is
    not there): their errors, which requests' handling never sees, count as a drop."""
    import http.client

    import urllib3

    if reader == "urllib3":  # as with a urllib3 whose response has no http.client one inside
        monkeypatch.setattr(download, "_socket_readinto", lambda response: response.raw.readinto)
    cls, error = ((http.client.HTTPResponse, ConnectionResetError("connection reset by peer")) if reader == "http.client"
                  else (urllib3.response.HTTPResponse, urllib3.exceptions.ProtocolError("connection reset by peer")))
    real = cls.readinto
    dropped = []

    def flaky(self, buffer):
        if not dropped:
            dropped.append(True)
            raise error
        return real(self, buffer)

    monkeypatch.setattr(cls, "readinto", flaky)
    assert _run(granted, size) == 0
    assert dropped and (granted["out"] / "model.safetensors").read_bytes() == DATA


def test_ranges_are_read_from_the_socket_into_buffers_used_again(granted, size, ranges, monkeypatch):  # noqa: F811
    """Every range lands in one of CONNECTIONS + 1 buffers, read by http.client's readinto, not urllib3's copy,
    and each thread keeps its connection to the storage from one range to the next."""
    import http.client

    import urllib3

    buffers, direct, connected = [], [], []  # the buffers themselves, kept alive: their ids stay theirs
    real_range, real_readinto = download._range, http.client.HTTPResponse.readinto
    real_connect = urllib3.connection.HTTPConnection.connect
    server_port = int(granted["server"].rsplit(":", 1)[1])

    def spy_connect(self):
        if self.port != server_port:  # the storage's links, not the API's calls
            connected.append(self.port)
        return real_connect(self)

    def spy_range(url, start, end, name, *, buffer):
        buffers.append(buffer)
        return real_range(url, start, end, name, buffer=buffer)

    def spy_readinto(self, view):
        direct.append(len(view))
        return real_readinto(self, view)

    def refused(self, view):
        raise AssertionError("urllib3's readinto copies: the range should not come through it")

    monkeypatch.setattr(download, "_range", spy_range)
    monkeypatch.setattr(http.client.HTTPResponse, "readinto", spy_readinto)
    monkeypatch.setattr(urllib3.response.HTTPResponse, "readinto", refused)
    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", spy_connect)
    assert _run(granted, size) == 0
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert len({id(b) for b in buffers}) <= download.CONNECTIONS + 1 < len(buffers)
    assert sum(direct) >= len(DATA)
    # One connection a thread for the parallel ranges, one for the small file that comes in one stream.
    assert 0 < len(connected) <= download.CONNECTIONS + 1
