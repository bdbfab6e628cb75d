"""Downloads (#22, goal 4): the `stagegate` client's download of a 1 GiB file from SeaweedFS through a signed link,
sha256 verified, beside boto3's managed `download_file` (default TransferConfig: 8 MiB parts, 10 threads, no
verification) of the same object from the same bucket, alternated, best of N. Our figure includes the check.
Run: .venv/bin/python bench/bench_downloads.py [--gib 1 --rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stagegate_client.api import Link  # noqa: E402
from stagegate_client.download import download  # noqa: E402

from devstack.procs import stop_pid_file  # noqa: E402
from devstack.seaweed import new_credentials, start_seaweedfs  # noqa: E402

GOAL, KEY, CHUNK = 1.0, "bench/weights.bin", 64 << 20


def _file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(CHUNK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        access, secret = new_credentials()
        s3 = start_seaweedfs(tmp / "s3", access_key=access, secret_key=secret, bucket="bench")
        try:
            client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=access,
                                  aws_secret_access_key=secret, region_name="us-east-1",
                                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
            source = tmp / "source.bin"
            sha256 = _file(source, size)
            client.upload_file(str(source), "bench", KEY)
            source.unlink()
            url = client.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": KEY}, ExpiresIn=3600)
            link = Link(url=url, expires_at="", bytes=size, sha256=sha256)

            def ours() -> None:
                target = tmp / "ours.bin"
                target.unlink(missing_ok=True)
                download(lambda: link, target, expected_bytes=size, expected_sha256=sha256, progress=False)

            def theirs() -> None:
                target = tmp / "theirs.bin"
                target.unlink(missing_ok=True)
                client.download_file("bench", KEY, str(target))

            our_times, their_times = [], []
            for _ in range(args.rounds):
                their_times.append(_timed(theirs))
                our_times.append(_timed(ours))
            mine, ref = min(our_times), min(their_times)
        finally:
            stop_pid_file(s3.pid_file)
    mb = size / 1e6
    print(f"{os.cpu_count()} cores, {size:,} bytes from SeaweedFS on loopback, best of {args.rounds} alternated runs")
    print(f"{'boto3 download_file (no check)':>36} {ref:6.2f} s {mb / ref:8.0f} MB/s")
    print(f"{'stagegate download (sha256 checked)':>36} {mine:6.2f} s {mb / mine:8.0f} MB/s")
    print(json.dumps({"benchmark": "download_1gib_vs_boto3", "ours": round(mb / mine, 1), "peer": round(mb / ref, 1),
                      "unit": "MB/s", "ratio": round(ref / mine, 3), "goal": GOAL}))


if __name__ == "__main__":
    main()
