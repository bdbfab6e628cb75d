"""`stagegate download-model SLUG`: fetch a model's files through signed links, resumable and verified."""

import argparse
import os
import sys
from pathlib import Path

from stagegate_client.api import Server, ServerRefused
from stagegate_client.download import ChecksumMismatch, DownloadFailed, download

DEFAULT_SERVER = "http://127.0.0.1:8000"
EXIT_REFUSED, EXIT_CHECKSUM, EXIT_FAILED = 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stagegate", description="Stagegate command-line client.")
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser("download-model", help="download every file of a model size")
    model.add_argument("slug", help="model size, e.g. gpt2-124m")
    model.add_argument("--out", help="directory for the files (default models/SLUG)")
    model.add_argument("--server", default=os.environ.get("STAGEGATE_SERVER", DEFAULT_SERVER),
                       help=f"Stagegate base URL (default $STAGEGATE_SERVER or {DEFAULT_SERVER})")
    model.add_argument("--token", default=os.environ.get("STAGEGATE_TOKEN"),
                       help="API token (default $STAGEGATE_TOKEN); public sizes need none")
    model.add_argument("--dry-run", action="store_true", help="list what would be fetched and stop")
    model.add_argument("--no-verify", action="store_true", help="skip the sha256 check (not recommended)")
    model.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def download_model(args: argparse.Namespace) -> int:
    server = Server(args.server, args.token)
    manifest = server.model_manifest(args.slug)
    out = Path(args.out or Path("models") / args.slug)
    files = manifest["files"]
    total = sum(f["bytes"] for f in files)
    print(f"{args.slug} ({manifest['stage']}): {len(files)} files, {total:,} bytes → {out}")
    if args.dry_run:
        for f in files:
            print(f"  {f['filename']:<24} {f['bytes']:>14,}  sha256 {f['sha256']}")
        return 0
    for f in files:
        download(
            lambda name=f["filename"]: server.model_file_link(args.slug, name),
            out / f["filename"], expected_bytes=f["bytes"], expected_sha256=f["sha256"],
            verify=not args.no_verify, progress=not args.quiet,
        )
    print(f"Done: {len(files)} files{'' if args.no_verify else ', sha256 verified'}, in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return download_model(args)
    except ServerRefused as exc:
        print(f"stagegate: refused: {exc.detail} [{exc.reason}]", file=sys.stderr)
        return EXIT_REFUSED
    except ChecksumMismatch as exc:
        print(f"stagegate: checksum mismatch: {exc}", file=sys.stderr)
        return EXIT_CHECKSUM
    except DownloadFailed as exc:
        print(f"stagegate: download failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
