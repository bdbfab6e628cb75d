"""The Hub protocol, driven by the real clients (`huggingface_hub`, `transformers`, `datasets`, the `hf` CLI)
against the live server, with SeaweedFS links: who gets what, what is counted, what they download."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from modelcore.export import export_hf
from modelcore.model import GPT, GPTConfig
from modelcore.tokenizer import train_tokenizer
from registry import revisions
from releases.models import AuditEvent, IssuedLink
from tests.datasets.conftest import K40, register
from tests.releases.conftest import (
    HPARAMS,
    make_grant,
    make_partner,
    make_size,
    move,
    move_dataset,
    publish_terms,
    token_for,
)
from workers.bridge import MODEL_FILES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TEXT = "\n\n".join(f"Speech {i}. " + "To be, or not to be, that is the question. " * (1 + i % 4) for i in range(600))
PROMPT = "To be, or not to be"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model(s3, tmp_path):
    """mini-1m, a small GPT with perturbed weights and a trained tokenizer, stored as one revision."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(**HPARAMS))
    with torch.no_grad():
        for parameter in gpt.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    tokenizer = train_tokenizer([TEXT], HPARAMS["n_vocab"])
    out = export_hf(gpt, tokenizer, tmp_path / "export")
    size = make_size("mini-1m")
    revision = revisions.revision_create(size=size, files={name: out / name for name in MODEL_FILES})
    ids = torch.tensor([tokenizer.encode(PROMPT)])
    with torch.no_grad():
        logits = gpt.eval()(ids)[0][0, -1]
    return {"size": size, "revision": revision, "files": out, "logits": logits}


@pytest.fixture
def partners(model, alice, bob, pat):
    """mini-1m at the partners stage; pat's lab holds a grant for it and pat accepted the terms."""
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    grant = make_grant(partner, model["size"], alice)
    move(model["size"], "partners", requester=alice, approvers=[bob])
    return {**model, "grant": grant, "token": token_for(pat)}


def _client(server: str, token: str | None, home: Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter as a user of the clients would, HF_ENDPOINT pointing here."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HF_HOME": str(home / "hf"), "HF_ENDPOINT": server,
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "TOKENIZERS_PARALLELISM": "false"}
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=home, capture_output=True, text=True,
                          timeout=300)


LOAD_MODEL = f"""
import json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("mini/mini-1m").eval()
tokenizer = AutoTokenizer.from_pretrained("mini/mini-1m")
ids = tokenizer({PROMPT!r}, return_tensors="pt").input_ids
with torch.no_grad():
    print(json.dumps(model(ids).logits[0, -1].tolist()))
"""


def test_transformers_loads_a_partners_size_with_a_grant_token_and_computes_what_we_compute(
        partners, live_server, tmp_path):
    done = _client(live_server.url, partners["token"], tmp_path, LOAD_MODEL)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (theirs - partners["logits"]).abs().max().item() < 1e-4
    assert partners["logits"].abs().max().item() > 0.5  # a real comparison, not of two near-zero vectors
    # Every file fetched was one issued link on pat's grant, recorded and audited with the revision.
    issued = IssuedLink.objects.filter(grant=partners["grant"])
    assert sorted(issued.values_list("filename", flat=True)) == sorted(MODEL_FILES)
    assert set(issued.values_list("revision__revision", flat=True)) == {partners["revision"].revision}
    assert AuditEvent.objects.filter(action="link.issued").count() == len(MODEL_FILES)

    # Loading again from the clients' cache asks HEAD only: no link, no quota used.
    again = _client(live_server.url, partners["token"], tmp_path, LOAD_MODEL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert issued.count() == len(MODEL_FILES)


def test_anonymous_clients_load_a_public_size_and_snapshot_download_matches_the_manifest(
        model, live_server, tmp_path, alice, bob, carol, api):
    move(model["size"], "public", requester=alice, approvers=[bob, carol])
    done = _client(live_server.url, None, tmp_path, LOAD_MODEL)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (theirs - model["logits"]).abs().max().item() < 1e-4
    folder = Path(snapshot_download("mini/mini-1m", endpoint=live_server.url, token=False,
                                    cache_dir=tmp_path / "snapshot"))
    manifest = api.get("/api/v1/models/mini-1m/manifest/").json()
    assert manifest["revision"] == model["revision"].revision == folder.name
    assert {f["filename"]: f["sha256"] for f in manifest["files"]} == {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    assert set(IssuedLink.objects.values_list("basis", flat=True)) == {"public"}


def test_hf_download_of_a_revision_gets_the_registered_bytes(partners, live_server, tmp_path):
    revision = partners["revision"].revision
    out = tmp_path / "out"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": live_server.url, "HF_TOKEN": partners["token"], "HF_HUB_DISABLE_XET": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "hf"), "download", "mini/mini-1m", "--revision",
                           revision, "--local-dir", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in MODEL_FILES:
        assert (out / name).read_bytes() == (partners["files"] / name).read_bytes()
    assert IssuedLink.objects.filter(grant=partners["grant"]).count() == len(MODEL_FILES)


def test_who_is_refused_gets_the_clients_own_errors(partners, live_server, tmp_path, rita, django_user_model,
                                                    alice):
    server = live_server.url

    def fetch(token, filename="config.json", revision=None, repo="mini/mini-1m"):
        return hf_hub_download(repo, filename, revision=revision, endpoint=server, token=token,
                               cache_dir=tmp_path / "cache")

    with pytest.raises(GatedRepoError):  # anonymous on a gated repository
        fetch(False)
    with pytest.raises(GatedRepoError, match="not_a_partner"):
        fetch(token_for(rita))
    outsider = django_user_model.objects.create_user("olga", password="x")
    make_partner(alice, outsider, name="Other Lab")
    publish_terms(alice, "v2", outsider)  # newer terms: pat has not accepted them
    with pytest.raises(GatedRepoError, match="no_grant"):
        fetch(token_for(outsider))
    with pytest.raises(GatedRepoError, match="terms_not_accepted"):
        fetch(partners["token"])
    publish_terms(alice, "v3", django_user_model.objects.get(username="pat"))
    assert Path(fetch(partners["token"])).read_bytes() == (partners["files"] / "config.json").read_bytes()
    with pytest.raises(RevisionNotFoundError):
        fetch(partners["token"], revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        fetch(partners["token"], filename="pytorch_model.bin")
    with pytest.raises(RepositoryNotFoundError):  # no such repository
        fetch(partners["token"], repo="mini/mini-9m")
    hidden = make_size("mini-2m")  # internal: indistinguishable from none, even to a grant holder
    revisions.revision_create(size=hidden, files={"config.json": partners["files"] / "config.json"})
    with pytest.raises(RepositoryNotFoundError):
        fetch(partners["token"], repo="mini/mini-2m")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server, token=False).model_info("mini/mini-2m")
    assert HfApi(endpoint=server, token=token_for(alice)).model_info("mini/mini-2m").id == "mini/mini-2m"


def test_a_head_issues_no_link_and_a_get_counts_against_the_quota(partners, live_server):
    grant = partners["grant"]
    grant.quota_links, grant.quota_period_s = 1, 3600
    grant.save()
    url = f"{live_server.url}/mini/mini-1m/resolve/main/model.safetensors"
    stored = (partners["files"] / "model.safetensors").read_bytes()
    for scheme in ("Bearer", "Token"):  # both spellings of the token are accepted
        head = requests.head(url, headers={"Authorization": f"{scheme} {partners['token']}"}, timeout=30)
        assert head.status_code == 200
        assert head.headers["X-Repo-Commit"] == partners["revision"].revision
        assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(stored).hexdigest()}"'
        assert head.headers["X-Linked-Size"] == str(len(stored))
    assert IssuedLink.objects.count() == 0
    first = requests.get(url, headers={"Authorization": f"Bearer {partners['token']}"}, timeout=30)
    assert first.status_code == 200 and first.content == stored  # followed the redirect to SeaweedFS
    assert IssuedLink.objects.filter(grant=grant, filename="model.safetensors").count() == 1
    second = requests.get(url, headers={"Authorization": f"Bearer {partners['token']}"}, timeout=30,
                          allow_redirects=False)
    assert second.status_code == 429 and int(second.headers["Retry-After"]) > 0
    assert "quota_exhausted" in second.json()["error"]
    again = requests.head(url, headers={"Authorization": f"Bearer {partners['token']}"}, timeout=30)
    assert (again.status_code, again.headers["X-Error-Code"]) == (403, "GatedRepo")
    assert again.headers["X-Error-Message"].startswith("quota_exhausted: ")
    assert IssuedLink.objects.count() == 1
    bad = requests.head(url, headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert bad.status_code == 401


def test_each_download_by_the_client_is_one_link_of_the_quota_and_an_exhausted_quota_is_its_error(
        partners, live_server, tmp_path):
    grant = partners["grant"]
    grant.quota_links, grant.quota_period_s = 2, 3600
    grant.save()

    def download(n: int) -> Path:  # a fresh cache each time: a real download, not the cached file
        return Path(hf_hub_download("mini/mini-1m", "model.safetensors", endpoint=live_server.url,
                                    token=partners["token"], cache_dir=tmp_path / f"cache-{n}"))

    for n in range(2):
        assert download(n).read_bytes() == (partners["files"] / "model.safetensors").read_bytes()
        assert IssuedLink.objects.filter(grant=grant, filename="model.safetensors").count() == n + 1
    # The HEAD before a download refuses at once, saying when the next link is allowed (a 429 there would have
    # the client sleep Retry-After, five times over); the GET itself answers 429 with Retry-After.
    with pytest.raises(GatedRepoError, match="quota_exhausted") as raised:
        download(2)
    assert int(raised.value.response.headers["Retry-After"]) > 3000
    link = requests.get(f"{live_server.url}/mini/mini-1m/resolve/main/model.safetensors", allow_redirects=False,
                        headers={"Authorization": f"Bearer {partners['token']}"}, timeout=30)
    assert link.status_code == 429 and int(link.headers["Retry-After"]) > 3000
    assert IssuedLink.objects.filter(grant=grant).count() == 2
    # What is already in the client's cache still loads.
    assert download(0).read_bytes() == (partners["files"] / "model.safetensors").read_bytes()


def test_an_older_public_revision_serves_its_own_bytes(model, live_server, tmp_path, alice, bob, carol):
    move(model["size"], "public", requester=alice, approvers=[bob, carol])
    first = model["revision"]
    changed = _write(tmp_path, "config.json", (model["files"] / "config.json").read_bytes() + b"\n")
    second = revisions.revision_create(size=model["size"], files={"config.json": changed}, inherit=True)
    move(model["size"], "public", requester=alice, approvers=[bob, carol])  # its newest revision: second

    def config(revision):
        return Path(hf_hub_download("mini/mini-1m", "config.json", revision=revision, endpoint=live_server.url,
                                    token=False, cache_dir=tmp_path / "cache")).read_bytes()

    assert config(None) == changed.read_bytes()
    assert config(first.revision) == (model["files"] / "config.json").read_bytes()
    assert config(second.revision) == changed.read_bytes()


def test_a_public_size_is_open_to_anonymous_clients_and_main_is_the_newest_they_may_have(
        model, live_server, tmp_path, alice, bob, carol):
    move(model["size"], "public", requester=alice, approvers=[bob, carol])
    extra = _write(tmp_path, "generation_config.json", b"{}")
    newer = revisions.revision_create(size=model["size"], files={extra.name: extra}, inherit=True)  # internal
    api = HfApi(endpoint=live_server.url, token=False)
    info = api.model_info("mini/mini-1m", files_metadata=True)
    assert info.sha == model["revision"].revision != newer.revision
    assert sorted(f.rfilename for f in info.siblings) == sorted(MODEL_FILES)
    assert {f.rfilename: f.lfs.sha256 for f in info.siblings} == {
        a.filename: a.sha256 for a in model["revision"].artifacts.all()}
    with pytest.raises(RevisionNotFoundError):  # the internal revision is not there for them
        api.model_info("mini/mini-1m", revision=newer.revision)
    staff = HfApi(endpoint=live_server.url, token=token_for(alice))
    assert staff.model_info("mini/mini-1m").sha == newer.revision
    path = hf_hub_download("mini/mini-1m", "vocab.json", endpoint=live_server.url, token=False,
                           cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == (model["files"] / "vocab.json").read_bytes()
    assert IssuedLink.objects.get().basis == "public"


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


LOAD_DATASET = """
import json, datasets
loaded = datasets.load_dataset("mini/mini-1m-k40")
print(json.dumps({split: [part.num_rows, sorted(part.column_names), part[0]] for split, part in loaded.items()}))
"""


def test_datasets_loads_a_published_dataset_with_its_three_splits(s3, live_server, tmp_path, alice, bob, carol):
    size = make_size("mini-1m")
    revisions.revision_create(size=size, files={"config.json": _write(tmp_path, "config.json", b"{}")})
    move(size, "public", requester=alice, approvers=[bob, carol])
    dataset = register("mini-1m-k40", size=size, sampling=K40)
    move_dataset(dataset, "public", requester=alice, approvers=[bob, carol])
    done = _client(live_server.url, None, tmp_path, LOAD_DATASET)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(loaded) == ["test", "train", "validation"]
    assert [loaded[split][0] for split in ("train", "validation", "test")] == [40, 6, 6]
    assert loaded["train"][1] == ["ended", "id", "length", "text"]
    assert loaded["train"][2]["text"].startswith("mini-1m-k40 train line 0")
    assert AuditEvent.objects.filter(action="dataset_link.issued").count() == 3


def test_a_partners_dataset_is_for_grant_holders_only(partners, live_server, tmp_path, alice, bob, rita):
    dataset = register("mini-1m-k40", size=partners["size"], sampling=K40)
    move_dataset(dataset, "partners", requester=alice, approvers=[bob])
    for token in (False, token_for(rita)):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=live_server.url, token=token).dataset_info("mini/mini-1m-k40")
    refused = _client(live_server.url, token_for(rita), tmp_path, LOAD_DATASET)
    assert refused.returncode != 0 and "DatasetNotFoundError" in refused.stderr
    assert AuditEvent.objects.filter(action="dataset_link.issued").count() == 0
    info = HfApi(endpoint=live_server.url, token=partners["token"]).dataset_info("mini/mini-1m-k40")
    assert sorted(f.rfilename for f in info.siblings) == [
        "mini-1m-k40.test.jsonl", "mini-1m-k40.train.jsonl", "mini-1m-k40.valid.jsonl"]
    path = hf_hub_download("mini/mini-1m-k40", "mini-1m-k40.test.jsonl", repo_type="dataset",
                           endpoint=live_server.url, token=partners["token"], cache_dir=tmp_path / "cache")
    assert len(Path(path).read_text().splitlines()) == 6
