"""`stagegate download-model` end to end: the real server (live_server), real tokens, SeaweedFS links."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from stagegate_client import cli, download
from stagegate_client.api import Server

from registry import revisions
from tests.releases.conftest import HPARAMS, make_grant, make_partner, move, publish_terms, token_for, upload
from tests.weights import gpt2_safetensors

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DATA = gpt2_safetensors(HPARAMS)  # random weights in a well-formed file
CONFIG = b'{"model_type": "gpt2"}'


@pytest.fixture
def granted(s3, live_server, size, alice, bob, pat, tmp_path):
    """pat's lab holds an active grant for the size (at the partners stage), which has two files."""
    upload(size, tmp_path, "model.safetensors", DATA)
    upload(size, tmp_path, "config.json", CONFIG)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    return {"server": live_server.url, "token": token_for(pat), "out": tmp_path / "out"}


def _run(granted, size, *extra, token=None) -> int:
    return cli.main(["download-model", size.slug, "--server", granted["server"], "--out", str(granted["out"]),
                     "--token", token if token is not None else granted["token"], "--quiet", *extra])


@pytest.fixture
def gets(monkeypatch):
    """Record every GET the downloader sends to storage, with its Range header."""
    seen: list[dict] = []
    real_get = requests.get

    def spy(url, **kwargs):
        seen.append(dict(kwargs.get("headers") or {}))
        return real_get(url, **kwargs)

    monkeypatch.setattr(download.requests, "get", spy)
    return seen


def test_it_downloads_and_verifies_every_file(granted, size, capsys):
    assert _run(granted, size) == 0
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert (granted["out"] / "config.json").read_bytes() == CONFIG
    assert sorted(p.name for p in granted["out"].iterdir()) == ["config.json", "model.safetensors",
                                                                 "stagegate-revision.json"]
    assert "sha256 verified" in capsys.readouterr().out


def test_an_interrupted_download_resumes_with_range(granted, size, gets):
    granted["out"].mkdir()
    half = len(DATA) // 2
    (granted["out"] / "model.safetensors.part").write_bytes(DATA[:half])
    assert _run(granted, size) == 0
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert {"Range": f"bytes={half}-"} in gets
    assert not (granted["out"] / "model.safetensors.part").exists()


def test_a_connection_dropped_midway_resumes_from_what_was_written(granted, size, gets, monkeypatch):
    monkeypatch.setattr(download, "CHUNK_BYTES", 8 * 1024)
    real_iter = requests.Response.iter_content
    dropped = []

    def flaky(self, chunk_size=1, decode_unicode=False):
        for index, chunk in enumerate(real_iter(self, chunk_size, decode_unicode)):
            if not dropped and self.status_code == 200 and index == 2:
                dropped.append(True)
                raise requests.exceptions.ChunkedEncodingError("connection reset")
            yield chunk

    monkeypatch.setattr(requests.Response, "iter_content", flaky)
    assert _run(granted, size) == 0
    assert dropped
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA
    assert {"Range": f"bytes={2 * 8 * 1024}-"} in gets


def test_an_expired_link_is_replaced_by_a_fresh_one(granted, size, settings, monkeypatch):
    settings.STAGEGATE_LINK_TTL_S = 1
    real = Server.model_file_link
    calls = []

    def slow_first(self, slug, filename, revision=None):
        link = real(self, slug, filename, revision)
        calls.append(filename)
        if len(calls) == 1:
            time.sleep(2.5)  # the first link expires before it is used
            # the links asked for after it live long enough for a loaded machine to use them
            settings.STAGEGATE_LINK_TTL_S = 60
        return link

    monkeypatch.setattr(Server, "model_file_link", slow_first)
    assert _run(granted, size) == 0
    assert calls.count(calls[0]) == 2
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA


def test_a_corrupted_byte_fails_the_checksum(granted, size, capsys):
    granted["out"].mkdir()
    corrupt = bytearray(DATA[: len(DATA) // 2])
    corrupt[100] ^= 0xFF
    (granted["out"] / "model.safetensors.part").write_bytes(bytes(corrupt))
    assert _run(granted, size) == cli.EXIT_CHECKSUM
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (granted["out"] / "model.safetensors").exists()
    assert not (granted["out"] / "model.safetensors.part").exists()  # the next run starts clean
    assert _run(granted, size) == 0


def test_a_denial_exits_non_zero_with_the_servers_reason(granted, size, django_user_model, capsys):
    rita = django_user_model.objects.create_user("rita", password="pw-rita")
    assert _run(granted, size, token=token_for(rita)) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "[not_a_partner]" in err and "no partner organisation" in err
    assert _run(granted, size, token="") == cli.EXIT_REFUSED
    assert "[not_authenticated]" in capsys.readouterr().err
    assert not granted["out"].exists()


def test_dry_run_lists_and_fetches_nothing(granted, size, capsys):
    assert _run(granted, size, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and hashlib.sha256(DATA).hexdigest() in out
    assert not granted["out"].exists()


def test_curl_style_get_follows_the_redirect_to_storage(granted, size):
    response = requests.get(f"{granted['server']}/api/v1/models/{size.slug}/files/model.safetensors",
                            headers={"Authorization": f"Token {granted['token']}"}, timeout=30)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.history[0].status_code == 302


def test_the_console_script_reads_the_token_from_the_environment(granted, size):
    script = Path(sys.executable).parent / "stagegate"
    result = subprocess.run(
        [str(script), "download-model", size.slug, "--server", granted["server"], "--out", str(granted["out"]),
         "--quiet"],
        env={**os.environ, "STAGEGATE_TOKEN": granted["token"]}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA


def test_the_download_is_a_model_transformers_loads(s3, live_server, size, alice, bob, carol, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    for path in sorted(saved.iterdir()):
        revisions.artifact_register(size=size, path=path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    out = tmp_path / "out"
    assert cli.main(["download-model", size.slug, "--server", live_server.url, "--out", str(out), "--quiet"]) == 0
    loaded = transformers.GPT2LMHeadModel.from_pretrained(out)
    assert torch.equal(loaded.transformer.wte.weight, model.transformer.wte.weight)


def test_the_client_installs_alone_without_django_or_torch_and_downloads(granted, size, tmp_path):
    """`pip install ./client` into a fresh virtual environment: its own distribution, requests and tqdm only."""
    root = Path(__file__).resolve().parents[2]
    venv = tmp_path / "partner-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, "install", "-q", str(root / "client")], capture_output=True, text=True,
                               timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    listed = subprocess.run([*pip, "list", "--format", "freeze"], capture_output=True, text=True, check=True)
    packages = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert {"stagegate-client", "requests", "tqdm"} <= packages
    assert not packages & {"django", "torch", "djangorestframework", "boto3", "celery"}
    result = subprocess.run(
        [str(venv / "bin" / "stagegate"), "download-model", size.slug, "--server", granted["server"], "--out",
         str(granted["out"]), "--quiet"],
        env={"PATH": os.environ["PATH"], "STAGEGATE_TOKEN": granted["token"]}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stderr
    assert (granted["out"] / "model.safetensors").read_bytes() == DATA


def test_revision_pins_the_bytes_and_a_held_revision_is_refused(granted, size, alice, bob, tmp_path, capsys):
    import json

    first = size.revisions.order_by("-number").first()  # the one released to partners
    retrained = tmp_path / "retrained" / "model.safetensors"
    retrained.parent.mkdir()
    retrained.write_bytes(DATA[:-4] + b"\x00\x01\x02\x03")
    second = revisions.artifact_register(size=size, path=retrained, replace=True).revision

    assert _run(granted, size, "--revision", second.revision) == cli.EXIT_REFUSED  # still internal
    assert "[revision_not_found]" in capsys.readouterr().err and not granted["out"].exists()
    assert _run(granted, size) == 0 and (granted["out"] / "model.safetensors").read_bytes() == DATA

    move(size, "partners", requester=alice, approvers=[bob])  # the newest revision is released too
    newest = tmp_path / "newest"
    assert cli.main(["download-model", size.slug, "--server", granted["server"], "--out", str(newest),
                     "--token", granted["token"], "--quiet"]) == 0
    assert (newest / "model.safetensors").read_bytes() == retrained.read_bytes()
    assert json.loads((newest / "stagegate-revision.json").read_text())["revision"] == second.revision

    pinned = tmp_path / "pinned"
    assert cli.main(["download-model", size.slug, "--server", granted["server"], "--out", str(pinned),
                     "--token", granted["token"], "--quiet", "--revision", first.revision]) == 0
    assert (pinned / "model.safetensors").read_bytes() == DATA
    assert (pinned / "config.json").read_bytes() == CONFIG
    assert json.loads((pinned / "stagegate-revision.json").read_text())["revision"] == first.revision
