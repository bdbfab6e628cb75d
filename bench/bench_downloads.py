"""Downloads (#22, goal 4): one object in SeaweedFS, 1 GiB by default, fetched three ways, alternated, best of N.

- stagegate: `stagegate download-model`'s path (stagegate_client): the manifest and a signed link from a running
  Stagegate server, then the file as 16 MiB ranges over 3 connections, sha256 checked as the bytes arrive. Our
  figure includes the two API calls and the check.
- boto3: the managed `download_file` of the same object from the same bucket (default TransferConfig: 8 MiB
  parts, 10 threads, no verification), with the bucket's own keys.
- huggingface_hub: `hf_hub_download` (huggingface_hub 2.4.0) through Stagegate's Hub endpoint (releases/hub/),
  with the same partner token, into a fresh `cache_dir`. It sends HEAD /<repo>/resolve/main/<file> (Stagegate
  answers the commit, ETag / X-Linked-Etag = the sha256, X-Linked-Size), then GET on the same URL, which Stagegate
  answers with a 302 to a fresh signed SeaweedFS link (issued, counted and audited as ours is); httpx follows it
  (dropping the Authorization header on the cross-origin redirect) and reads the body over one connection in
  10 MiB chunks into `blobs/<etag>.<random>.incomplete`, then renames it and links it from `snapshots/<commit>/`.
  It checks only the byte count against X-Linked-Size: the sha256 names the cache blob but is never compared with
  the bytes (`HfApi.verify_repo_checksums` is a separate, opt-in pass). No xet: HF_HUB_DISABLE_XET=1 is set before
  huggingface_hub is imported (its constants read it then), and Stagegate sends no X-Xet-* headers anyway;
  hf_transfer is not used by 2.4.0 at all (HF_HUB_ENABLE_HF_TRANSFER only warns). Progress bars are off for
  both clients.

The object is a `model.safetensors` of exactly the size asked for (a well-formed header for a GPT-2 shape, padded
with spaces; random F32 data), registered through the registry's services as the newest revision of a size that
policy staff moved to `partners`, for which a partner holds a grant, its member accepted the terms and created a
download token. The server is gunicorn (one worker) on SQLite in a temporary folder, settings
config.settings.base configured through the environment as `make demo` does, with a private Redis.
Each leg writes to a fresh path, deleted after it is timed, so nothing comes from a cache.
Run: .venv/bin/python bench/bench_downloads.py [--gib 1 --rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

# huggingface_hub reads these when it is imported: plain HTTP only, nothing sent home, no progress bars.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_HUB_ENABLE_HF_TRANSFER", None)
os.environ.pop("HF_XET_HIGH_PERFORMANCE", None)
os.environ.pop("HF_ENDPOINT", None)
os.environ.pop("HF_TOKEN", None)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from huggingface_hub import constants as hf_constants  # noqa: E402
from huggingface_hub import hf_hub_download  # noqa: E402
from huggingface_hub.utils._runtime import is_xet_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stagegate_client.api import Server  # noqa: E402
from stagegate_client.download import download  # noqa: E402

from devstack.demo import server_healthy  # noqa: E402
from devstack.procs import free_port, spawn, stop_pid_file, wait_until  # noqa: E402
from devstack.redis import ensure_redis, stop_private_redis  # noqa: E402
from devstack.seaweed import new_credentials, start_seaweedfs  # noqa: E402

GOAL, CHUNK = 1.0, 64 << 20
FAMILY, SIZE, FILENAME = "bench", "bench-1g", "model.safetensors"
RATIONALE = "Benchmark of partner downloads: a throwaway size on a throwaway server, released to one partner."


# --------------------------------------------------------------------------- the file
def _shape(size: int) -> dict[str, int]:
    """GPT-2 hyperparameters whose F32 weights, with a header of at most 128 KiB, come to just under `size`."""
    e, n_ctx = 1024, 1024
    per_layer, fixed = 4 * (12 * e * e + 13 * e), 4 * (n_ctx * e + 2 * e)
    n_layer = max(1, int(0.94 * size) // per_layer)
    n_vocab = (size - 8 - (128 << 10) - fixed - n_layer * per_layer) // (4 * e)
    if n_vocab < 1:
        raise SystemExit(f"--gib too small: at least {(fixed + per_layer + 4 * e + (128 << 10)) / (1 << 30):.3f}")
    return {"n_vocab": n_vocab, "n_ctx": n_ctx, "n_embd": e, "n_head": 16, "n_layer": n_layer}


def _weights(path: Path, size: int, hparams: dict[str, int]) -> str:
    """Write a safetensors file of exactly `size` bytes for `hparams` (random data); returns its sha256."""
    from modelcore.safetensors_header import PREFIX, expected_shapes

    shapes = expected_shapes(**{k: hparams[k] for k in ("n_vocab", "n_ctx", "n_embd", "n_layer")})
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        end = offset + 4 * _product(shape)
        header[PREFIX + name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    pad = size - 8 - offset - len(raw)
    assert 0 <= pad <= 1 << 20, pad
    raw += b" " * pad  # JSON allows trailing spaces; safetensors pads its header with them too
    digest = hashlib.sha256(head := struct.pack("<Q", len(raw)) + raw)
    with open(path, "wb") as out:
        out.write(head)
        left = offset
        while left:
            block = os.urandom(min(CHUNK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    assert path.stat().st_size == size
    return digest.hexdigest()


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --------------------------------------------------------------------------- the platform
def _environment(tmp: Path, s3_env: dict[str, str], redis_url: str, port: int) -> dict[str, str]:
    from releases.audit.signing import key_file_write

    run_dir = tmp / "run"
    key_file_write(run_dir / "audit-ed25519.pem")
    (run_dir / "static").mkdir(parents=True, exist_ok=True)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "STAGEGATE_RUN_DIR": str(run_dir),
        "STAGEGATE_IGNORE_RUN_ENV": "1",  # never the demo's .run/stagegate.env
        "DJANGO_SECRET_KEY": new_credentials()[1],
        "DATABASE_URL": f"sqlite:///{run_dir / 'db.sqlite3'}",
        "REDIS_URL": f"{redis_url}/0",
        "STAGEGATE_AUDIT_KEY_FILE": str(run_dir / "audit-ed25519.pem"),
        "STAGEGATE_SITE_URL": f"http://127.0.0.1:{port}",
        "STAGEGATE_CACHE_DIR": str(run_dir / "cache"),
        "LOG_LEVEL": "WARNING",  # httpx logs every request at INFO, signed URLs included
        **s3_env,
    }


def _release(path: Path, sha256: str, hparams: dict[str, int]) -> tuple[dict, str]:
    """The size, its revision with the file, the partner, its grant and its member's token, through the services."""
    from datetime import timedelta

    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from registry import revisions
    from registry import services as registry_services
    from releases.access import grants, partners, tokens
    from releases.access.models import PartnerOrganisation
    from releases.governance import stage_requests
    from releases.governance.factors import FACTORS
    from releases.roles import POLICY_STAFF_GROUP, role_groups_ensure

    users = get_user_model().objects
    staff = role_groups_ensure()[POLICY_STAFF_GROUP]
    alice, bob = (users.create_user(name, email=f"{name}@example.org", is_staff=True) for name in ("alice", "bob"))
    for user in (alice, bob):
        user.groups.add(staff)
    pat = users.create_user("pat", email="pat@example.org")

    family = registry_services.family_upsert(slug=FAMILY, name="Bench")
    size = registry_services.model_size_upsert(family=family, slug=SIZE, display_name="Bench 1 GiB", hparams=hparams,
                                               actor=alice)
    revision = revisions.revision_create(size=size, files={FILENAME: path}, expected_sha256={FILENAME: sha256},
                                         actor=alice)
    request = stage_requests.stage_request_create(
        size=size, requester=alice, to_stage="partners", rationale=RATIONALE,
        factors={key: f"Assessed for the benchmark: {key.replace('_', ' ')}." for key in FACTORS})
    stage_requests.stage_request_approve(request=request, approver=bob)

    lab = partners.partner_create(name="Bench Lab", kind=PartnerOrganisation.Kind.SECURITY, actor=alice,
                                  contact_email="lab@example.org")
    partners.partner_member_add(partner=lab, user=pat, actor=alice)
    terms = partners.terms_publish(version="v1", text="Bench terms: no redistribution.", actor=alice)
    partners.terms_accept(user=pat, terms=terms)
    grants.grant_create(partner=lab, size=size, purpose="Measure downloads.", actor=alice,
                        expires_at=timezone.now() + timedelta(days=1))
    _token, key = tokens.token_create(user=pat, name="bench", expires_days=1, actor=pat)
    artifact = revision.artifacts.get(filename=FILENAME)
    size.refresh_from_db()
    assert size.stage == "partners" and artifact.sha256 == sha256, (size.stage, artifact.sha256)
    described = {"key": artifact.s3_key, "bytes": artifact.bytes, "revision": revision.revision}
    connections.close_all()  # the server has the database to itself from here
    return described, key


def _serve(run_dir: Path, env: dict[str, str], port: int):
    """gunicorn, as `make demo` serves the platform, with one worker: the downloads get the rest of the cores."""
    proc = spawn([str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                  "--workers", "1", "--threads", "2"],
                 log_file=run_dir / "gunicorn.log", pid_file=run_dir / "gunicorn.pid", env=env, cwd=ROOT)
    wait_until(lambda: server_healthy(port), timeout_s=60, what="the Stagegate server")
    return proc


# --------------------------------------------------------------------------- the run
def _timed(fn) -> tuple[float, Path]:
    start = time.perf_counter()
    fetched = fn()
    return time.perf_counter() - start, fetched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    hparams = _shape(size)
    assert hf_constants.HF_HUB_DISABLE_XET and not is_xet_available()
    with tempfile.TemporaryDirectory(prefix="bench-downloads-") as tmp:
        tmp = Path(tmp)
        access, secret = new_credentials()
        s3 = start_seaweedfs(tmp / "s3", access_key=access, secret_key=secret, bucket="bench")
        server = None
        try:
            redis_url = ensure_redis(tmp, force_private=True)
            port = free_port()
            env = _environment(tmp, s3.env(), redis_url, port)
            os.environ.update(env)
            source = tmp / FILENAME
            sha256 = _weights(source, size, hparams)
            stored, token = _release(source, sha256, hparams)
            source.unlink()
            server = _serve(tmp / "run", {**os.environ, **env}, port)
            base = f"http://127.0.0.1:{port}"
            client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=access,
                                  aws_secret_access_key=secret, region_name="us-east-1",
                                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
            out = tmp / "out"
            out.mkdir()

            def ours() -> Path:  # as `stagegate download-model bench-1g` fetches each file
                api = Server(base, token)
                manifest = api.model_manifest(SIZE)
                (entry,) = manifest["files"]
                return download(lambda: api.model_file_link(SIZE, FILENAME, manifest["revision"]),
                                out / "stagegate" / FILENAME, expected_bytes=entry["bytes"],
                                expected_sha256=entry["sha256"], progress=False)

            def boto() -> Path:
                client.download_file("bench", stored["key"], str(out / "boto3.bin"))
                return out / "boto3.bin"

            def hub() -> Path:
                return Path(hf_hub_download(repo_id=f"{FAMILY}/{SIZE}", filename=FILENAME, endpoint=base,
                                            token=token, cache_dir=out / "hf-cache"))

            from registry.storage import sha256_of_file  # Django is set up by now

            legs = {"boto3": boto, "huggingface_hub": hub, "stagegate": ours}
            times: dict[str, list[float]] = {name: [] for name in legs}
            for round_ in range(args.rounds):
                names = list(legs)
                names = names[round_ % 3:] + names[:round_ % 3]  # each leg goes first in turn
                for name in names:
                    seconds, fetched = _timed(legs[name])
                    times[name].append(seconds)
                    assert fetched.stat().st_size == size, (name, fetched.stat().st_size)
                    if round_ == 0 and name != "stagegate":  # the peers check nothing: make sure they got the file
                        assert sha256_of_file(fetched) == sha256, name
                    shutil.rmtree(out)
                    out.mkdir()
            best = {name: min(values) for name, values in times.items()}
        finally:
            if server is not None:
                stop_pid_file(tmp / "run" / "gunicorn.pid")
                server.wait(timeout=30)
            stop_private_redis(tmp)
            s3.stop()
    mb = size / 1e6
    print(f"{os.cpu_count()} cores, {size:,} bytes ({FILENAME}, revision {stored['revision'][:12]}) from SeaweedFS "
          f"on loopback, best of {args.rounds} alternated runs; every run (s): "
          + ", ".join(f"{name} {' '.join(f'{t:.2f}' for t in values)}" for name, values in times.items()))
    labels = {"boto3": "boto3 download_file (no check)", "huggingface_hub": "hf_hub_download via Hub (size only)",
              "stagegate": "stagegate download (sha256 checked)"}
    for name, label in labels.items():
        median = statistics.median(times[name])
        print(f"{label:>38} {best[name]:6.2f} s {mb / best[name]:8.0f} MB/s   (median {median:.2f} s)")
    ours_s = best["stagegate"]
    for peer in ("boto3", "huggingface_hub"):
        print(json.dumps({"benchmark": f"download_{args.gib:g}gib_vs_{peer}", "ours": round(ours_s, 3),
                          "peer": round(best[peer], 3), "unit": "s", "ratio": round(best[peer] / ours_s, 3),
                          "goal": GOAL}))


if __name__ == "__main__":
    main()
