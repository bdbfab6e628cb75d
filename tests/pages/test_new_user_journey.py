"""A new user's first visit: home → a size → its files; datasets → a dataset → its download; the CLI."""

import hashlib
import re

import pytest
import requests
from stagegate_client import cli

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _follow(base: str, html: str, pattern: str) -> tuple[str, str]:
    href = re.search(pattern, html).group(1)
    response = requests.get(base + href if href.startswith("/") else href, timeout=30)
    assert response.status_code == 200, href
    return href, response


def test_a_new_user_finds_a_size_s_files_and_a_dataset_s_download(live_server, datasets, public_size, s3, tmp_path):
    base = live_server.url
    weights = public_size.artifacts.get(filename="model.safetensors")
    home = requests.get(base + "/", timeout=30).text
    _, size_page = _follow(base, home, r'href="(/models/mini-1m/)"')
    _, file = _follow(base, size_page.text, r'href="(/api/v1/models/mini-1m/files/model\.safetensors\?revision=[0-9a-f]{40})"')
    assert hashlib.sha256(file.content).hexdigest() == weights.sha256 and weights.sha256 in size_page.text

    _, catalogue = _follow(base, home, r'href="(/datasets/)"')
    _, dataset_page = _follow(base, catalogue.text, r'href="(/datasets/mini-1m-k40/)"')
    _, split = _follow(base, dataset_page.text, r'href="(http://[^"]+/gpt-2/output-dataset/v1/mini-1m-k40\.valid\.jsonl)"')
    part = datasets["mini-1m-k40"].splits.get(split="valid")
    assert hashlib.sha256(split.content).hexdigest() == part.sha256 and part.sha256 in dataset_page.text

    out = tmp_path / "data"
    assert cli.main(["download-dataset", "mini-1m-k40", "--server", base, "--out", str(out), "--quiet"]) == 0
    assert (out / "mini-1m-k40.valid.jsonl").read_bytes() == split.content
