"""`stagegate download-dataset` end to end: the real server (live_server), SeaweedFS links, resume, checksums."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stagegate_client import cli, download

from tests.datasets import conftest as dataset_fixtures

# The dataset tests' fixtures: published datasets with real files in SeaweedFS, a fresh cache per test.
datasets, public_size = dataset_fixtures.datasets, dataset_fixtures.public_size
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _run(live_server, out, *args) -> int:
    return cli.main(["download-dataset", *args, "--server", live_server.url, "--out", str(out), "--quiet"])


@pytest.fixture
def gets(monkeypatch):
    seen: list[dict] = []
    real_get = download.requests.get

    def spy(url, **kwargs):
        seen.append(dict(kwargs.get("headers") or {}))
        return real_get(url, **kwargs)

    monkeypatch.setattr(download.requests, "get", spy)
    return seen


def _bytes_of(dataset, split: str) -> bytes:
    import requests

    from releases.access.dataset_links import dataset_link_issue

    return requests.get(dataset_link_issue(user=None, name=dataset.name, split=split).url, timeout=10).content


def test_it_downloads_every_split_and_verifies_it(live_server, datasets, tmp_path, capsys):
    out = tmp_path / "data"
    assert _run(live_server, out, "mini-1m-k40") == 0
    assert sorted(p.name for p in out.iterdir()) == [f"mini-1m-k40.{s}.jsonl" for s in ("test", "train", "valid")]
    for part in datasets["mini-1m-k40"].splits.all():
        assert (out / part.filename).stat().st_size == part.bytes
    assert "sha256 verified" in capsys.readouterr().out


def test_an_interrupted_download_resumes_with_range(live_server, datasets, tmp_path, gets):
    out = tmp_path / "data"
    out.mkdir()
    full = _bytes_of(datasets["mini-1m"], "train")
    half = len(full) // 2
    (out / "mini-1m.train.jsonl.part").write_bytes(full[:half])
    assert _run(live_server, out, "mini-1m", "--split", "train") == 0
    assert (out / "mini-1m.train.jsonl").read_bytes() == full
    assert {"Range": f"bytes={half}-"} in gets
    assert sorted(p.name for p in out.iterdir()) == ["mini-1m.train.jsonl"]


def test_a_corrupted_partial_file_fails_the_checksum_and_the_next_run_starts_clean(live_server, datasets, tmp_path,
                                                                                   capsys):
    out = tmp_path / "data"
    out.mkdir()
    corrupt = bytearray(_bytes_of(datasets["mini-1m"], "valid")[:100])
    corrupt[10] ^= 0xFF
    (out / "mini-1m.valid.jsonl.part").write_bytes(bytes(corrupt))
    assert _run(live_server, out, "mini-1m", "--split", "valid") == cli.EXIT_CHECKSUM
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (out / "mini-1m.valid.jsonl.part").exists()  # the bad bytes are gone, not resumed from
    assert _run(live_server, out, "mini-1m", "--split", "valid") == 0
    assert (out / "mini-1m.valid.jsonl").read_bytes() == _bytes_of(datasets["mini-1m"], "valid")
    assert sorted(p.name for p in out.iterdir()) == ["mini-1m.valid.jsonl"]


def test_unknown_or_unpublished_datasets_exit_non_zero_with_the_servers_reason(live_server, datasets, tmp_path,
                                                                                capsys):
    assert _run(live_server, tmp_path / "x", "mini-1m-draft") == cli.EXIT_REFUSED
    assert "[dataset_not_found]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_rate_limited_client_is_told_when_to_retry(live_server, datasets, tmp_path, settings, capsys):
    settings.STAGEGATE_DATASET_RATE_ANON = "1/min"
    assert _run(live_server, tmp_path / "x", "mini-1m", "--dry-run") == 0
    assert _run(live_server, tmp_path / "x", "mini-1m", "--dry-run") == cli.EXIT_REFUSED
    assert "[rate_limited]" in (err := capsys.readouterr().err) and "Retry after" in err


def test_the_console_script_downloads_one_split(live_server, datasets, tmp_path):
    script = Path(sys.executable).parent / "stagegate"
    out = tmp_path / "data"
    result = subprocess.run([str(script), "download-dataset", "mini-1m-reference", "--split", "test", "--server",
                             live_server.url, "--out", str(out), "--quiet"],
                            env=os.environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["mini-1m-reference.test.jsonl"]
