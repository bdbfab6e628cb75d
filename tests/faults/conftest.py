"""Fault tests start private services they can stop and restart: SeaweedFS and Redis on ports chosen
once per test and kept across a restart."""

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.procs import free_port, wait_until
from tests.releases.conftest import pat, size  # noqa: F401
from tests.workers.conftest import corpus_file  # noqa: F401


# --------------------------------------------------------------------------- SeaweedFS
@dataclass
class RestartableS3:
    base_dir: Path
    port: int
    access_key: str
    secret_key: str
    bucket: str = "stagegate-faults"
    server: object = None

    def start(self) -> None:
        from devstack.seaweed import start_seaweedfs

        # Same data folder, port and credentials: a restart, not a new server.
        self.server = start_seaweedfs(self.base_dir, access_key=self.access_key, secret_key=self.secret_key,
                                      bucket=self.bucket, s3_port=self.port)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def private_s3(settings, tmp_path):
    from devstack.seaweed import GRPC_OFFSET, new_credentials

    access_key, secret_key = new_credentials()
    s3 = RestartableS3(tmp_path / "seaweedfs", free_port(also_free_offset=GRPC_OFFSET), access_key, secret_key)
    s3.start()
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{s3.port}"
    settings.S3_PUBLIC_ENDPOINT_URL = ""
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = access_key, secret_key
    settings.S3_BUCKET = s3.bucket
    settings.S3_CONNECT_TIMEOUT_S = 1
    yield s3
    if s3.server is not None:
        s3.server.stop()


# --------------------------------------------------------------------------- Redis
@dataclass
class RestartableRedis:
    data_dir: Path
    port: int
    process: subprocess.Popen | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        from devstack.redis import _answers

        return _answers(self.port)

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        # Append-only file, fsynced on every write: queued messages survive a stop.
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self.answers, timeout_s=20, what="private Redis")

    def stop(self) -> None:
        self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
        self.process.wait(timeout=20)
        self.process = None


@pytest.fixture
def private_redis(tmp_path, monkeypatch, broker_url):
    """A private Redis; worker processes started after this fixture use it, and so do this process's producers."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed")
    (tmp_path / "redis").mkdir()
    redis = RestartableRedis(tmp_path / "redis", free_port())
    redis.start()
    monkeypatch.setenv("REDIS_URL", redis.url)
    with broker_url(redis.url):
        yield redis
    if redis.process is not None:
        redis.process.kill()
        redis.process.wait(timeout=20)
