"""A spoofed server names files outside `--out` (`../`, absolute paths): the client refuses before any download."""

import json

import pytest
from stagegate_client import cli
from stagegate_client.download import UnsafeFilename, safe_target

from tests.http_stub import QuietHandler, loopback_server

HOSTILE = ["../escaped.safetensors", "/tmp/absolute.safetensors", "sub/dir.json", "..", ".hidden", "a\x00b",
           "x" * 300, "", 7]


@pytest.fixture
def spoofed_server():
    """Answers a manifest (and a dataset) whose file names are whatever the test sets; counts link requests."""
    state = {"names": [], "posts": 0}

    class Handler(QuietHandler):
        def do_GET(self):
            files = [{"filename": name, "bytes": 3, "sha256": "0" * 64} for name in state["names"]]
            if "/manifest/" in self.path:
                body = {"model": "mini-1m", "stage": "public", "files": files}
            else:
                body = {"name": "mini-1m", "splits": [{"split": "valid", "filename": state["names"][0],
                                                       "lines": 1, "bytes": 3, "sha256": "0" * 64}]}
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self):
            state["posts"] += 1
            self.send_response(500)
            self.end_headers()

    with loopback_server(Handler) as base:
        yield base, state


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_name_aborts_the_model_download_with_nothing_written(spoofed_server, tmp_path, name, capsys):
    url, state = spoofed_server
    state["names"] = ["config.json", name]
    out = tmp_path / "deep" / "out"
    code = cli.main(["download-model", "mini-1m", "--server", url, "--out", str(out), "--quiet"])
    assert code == cli.EXIT_UNSAFE
    assert "not a plain file name" in capsys.readouterr().err
    assert state["posts"] == 0  # not even the safe file was fetched
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_a_hostile_split_file_name_aborts_the_dataset_download(spoofed_server, tmp_path):
    url, state = spoofed_server
    state["names"] = ["../../mini-1m.valid.jsonl"]
    code = cli.main(["download-dataset", "mini-1m", "--server", url, "--out", str(tmp_path / "d"), "--quiet"])
    assert code == cli.EXIT_UNSAFE
    assert state["posts"] == 0 and list(tmp_path.iterdir()) == []


def test_plain_names_map_inside_the_folder(tmp_path):
    assert safe_target(tmp_path, "model.safetensors") == tmp_path / "model.safetensors"
    assert safe_target(tmp_path, "mini-1m-k40.valid.jsonl").parent == tmp_path
    with pytest.raises(UnsafeFilename):
        safe_target(tmp_path, "../x")
