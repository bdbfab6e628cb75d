"""The run folder's env file: written by `make demo`, read by settings so manage.py finds the demo."""

import secrets
from pathlib import Path

ENV_FILE_NAME = "stagegate.env"


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make demo`; settings read it so `manage.py` talks to the demo. Do not commit."]
    lines += [f"{key}={value}" for key, value in sorted(values.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def new_secret_key() -> str:
    return secrets.token_urlsafe(64)
