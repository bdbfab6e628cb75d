"""`stagegate download-model SLUG` and `stagegate download-dataset NAME`: fetch through signed links,
resumable and sha256-verified. `stagegate grants`, `stagegate request-access SLUG`, `stagegate terms
[accept]`: a partner member's grants, requests and terms, as in the portal; `stagegate members`, `usage`: a
partner admin's view of the organisation (inviting and removing people happens in the portal, signed in)."""

import argparse
import json
import os
import sys
from pathlib import Path

from stagegate_client.api import Server, ServerRefused
from stagegate_client.download import ChecksumMismatch, DownloadFailed, UnsafeFilename, download, safe_target

DEFAULT_SERVER = "http://127.0.0.1:8000"
SPLITS = ("train", "valid", "test")
EXIT_REFUSED, EXIT_CHECKSUM, EXIT_FAILED, EXIT_UNSAFE = 2, 3, 4, 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stagegate", description="Stagegate command-line client.")
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser("download-model", help="download every file of a model size")
    model.add_argument("slug", help="model size, e.g. gpt2-124m")
    model.add_argument("--out", help="directory for the files (default models/SLUG)")
    model.add_argument("--revision", help="a revision id (40 hex digits); default: the newest you may have")
    _common(model, token_help="API token (default $STAGEGATE_TOKEN); public sizes need none")

    data = commands.add_parser("download-dataset", help="download the splits of an output dataset")
    data.add_argument("name", help="dataset, e.g. mini-1m-k40 (see /datasets/ or /api/v1/datasets/)")
    data.add_argument("--split", action="append", choices=SPLITS, dest="splits",
                      help="a split to fetch (repeat for several; default: all)")
    data.add_argument("--out", default="datasets", help="directory for <name>.<split>.jsonl (default datasets/)")
    _common(data, token_help="API token (default $STAGEGATE_TOKEN): optional, raises the rate limit")

    listed = commands.add_parser("grants", help="your organisation's grants, with their state and quota")
    _account(listed)
    ask = commands.add_parser("request-access", help="ask policy staff for a grant for a size")
    ask.add_argument("slug", help="model size at the partners stage, e.g. mini-3m")
    ask.add_argument("--purpose", required=True, help="what your organisation needs the size for")
    ask.add_argument("--answer", action="append", default=[], metavar="ID=ANSWER",
                     help="an answer to one of the size's access questions (repeat for each; `yes` ticks an "
                          "agree-to question). If a required one is missing, the command lists the questions "
                          "and stops.")
    _account(ask)
    terms = commands.add_parser("terms", help="show the partner terms of use in force; `terms accept` accepts them")
    terms.add_argument("action", nargs="?", choices=["show", "accept"], default="show")
    terms.add_argument("--version", help="with accept: the version you read (default: the one in force, shown "
                                         "first)")
    _account(terms)
    members = commands.add_parser("members", help="partner admins: your organisation's members, tokens, invitations")
    _account(members)
    used = commands.add_parser("usage", help="partner admins: links issued per size, revision and day")
    used.add_argument("--days", type=int, default=90, help="how many days back (default 90)")
    _account(used)
    return parser


def _account(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("STAGEGATE_SERVER", DEFAULT_SERVER),
                        help=f"Stagegate base URL (default $STAGEGATE_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--token", default=os.environ.get("STAGEGATE_TOKEN"),
                        help="API token (default $STAGEGATE_TOKEN)")


def _common(parser: argparse.ArgumentParser, *, token_help: str) -> None:
    parser.add_argument("--server", default=os.environ.get("STAGEGATE_SERVER", DEFAULT_SERVER),
                        help=f"Stagegate base URL (default $STAGEGATE_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--token", default=os.environ.get("STAGEGATE_TOKEN"), help=token_help)
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched and stop")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check (not recommended)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


REVISION_FILE = "stagegate-revision.json"


def download_model(args: argparse.Namespace) -> int:
    server = Server(args.server, args.token)
    manifest = server.model_manifest(args.slug, args.revision)
    revision = manifest.get("revision")  # every file comes from this one revision, even if a newer one appears
    out = Path(args.out or Path("models") / args.slug)
    files = manifest["files"]
    targets = {f["filename"]: safe_target(out, f["filename"]) for f in files}  # every name, before any byte
    total = sum(f["bytes"] for f in files)
    print(f"{args.slug} revision {revision} ({manifest['stage']}): {len(files)} files, {total:,} bytes → {out}")
    if args.dry_run:
        for f in files:
            print(f"  {f['filename']:<24} {f['bytes']:>14,}  sha256 {f['sha256']}")
        return 0
    for f in files:
        download(
            lambda name=f["filename"]: server.model_file_link(args.slug, name, revision),
            targets[f["filename"]], expected_bytes=f["bytes"], expected_sha256=f["sha256"],
            verify=not args.no_verify, progress=not args.quiet,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / REVISION_FILE).write_text(json.dumps({
        "model": args.slug, "revision": revision, "server": args.server,
        "files": {f["filename"]: f["sha256"] for f in files}}, indent=2) + "\n")
    print(f"Done: {len(files)} files{'' if args.no_verify else ', sha256 verified'}, revision {revision}, in {out}")
    return 0


def download_dataset(args: argparse.Namespace) -> int:
    server = Server(args.server, args.token)
    dataset = server.dataset(args.name)
    wanted = args.splits or [part["split"] for part in dataset["splits"]]
    parts = [part for part in dataset["splits"] if part["split"] in wanted]
    missing = sorted(set(wanted) - {part["split"] for part in parts})
    if missing:
        raise ServerRefused(404, "split_not_found", f"{args.name} has no split {', '.join(missing)}.")
    out = Path(args.out)
    targets = {part["split"]: safe_target(out, part["filename"]) for part in parts}
    total = sum(part["bytes"] for part in parts)
    print(f"{args.name}: {len(parts)} split(s), {total:,} bytes → {out}")
    if args.dry_run:
        for part in parts:
            print(f"  {part['filename']:<32} {part['lines']:>9,} lines {part['bytes']:>14,}  sha256 {part['sha256']}")
        return 0
    for part in parts:
        download(
            lambda split=part["split"]: server.dataset_split_link(args.name, split),
            targets[part["split"]], expected_bytes=part["bytes"], expected_sha256=part["sha256"],
            verify=not args.no_verify, progress=not args.quiet,
        )
    print(f"Done: {len(parts)} split(s){'' if args.no_verify else ', sha256 verified'}, in {out}")
    return 0


def list_grants(args: argparse.Namespace) -> int:
    rows = Server(args.server, args.token).grants()
    if not rows:
        print("Your organisation holds no grants.")
        return 0
    print(f"{'grant':>6}  {'size':<16} {'state':<18} {'from':<10} {'until':<10}  quota")
    for grant in rows:
        quota = (f"{grant['quota_links']} link(s) per file per {grant['quota_period_s']:,} s"
                 if grant["quota_links"] else "none")
        print(f"{grant['id']:>6}  {grant['model_size']:<16} {grant['state']:<18} {grant['starts_at'][:10]:<10} "
              f"{grant['expires_at'][:10]:<10}  {quota}")
    return 0


def _answers(given: list[str], questions: list[dict]) -> dict[str, object]:
    kinds = {str(question["id"]): question["kind"] for question in questions}
    answers: dict[str, object] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ServerRefused(400, "answers_invalid", f"--answer {item!r}: write it as ID=ANSWER.")
        key = key.strip()
        agreed = kinds.get(key) == "agree" and value.strip().lower() in ("yes", "y", "true", "1", "on")
        answers[key] = True if agreed else value
    return answers


def request_access(args: argparse.Namespace) -> int:
    server = Server(args.server, args.token)
    questions = server.access_questions(args.slug)
    answers = _answers(args.answer, questions)
    unanswered = [question for question in questions if str(question["id"]) not in answers and question["required"]]
    if unanswered:
        print(f"{args.slug} asks these questions; answer each with --answer ID=ANSWER:", file=sys.stderr)
        for question in questions:
            how = {"agree": "yes to agree", "choice": "one of: " + ", ".join(question["choices"])}.get(
                question["kind"], "text")
            flag = "" if question["required"] else " (optional)"
            print(f"  {question['id']}: {question['prompt']}{flag} [{how}]", file=sys.stderr)
        return EXIT_REFUSED
    made = server.access_request(args.slug, args.purpose, answers)
    print(f"Access request #{made['id']} for {made['model_size']} ({made['partner']}): {made['status']}.")
    return 0


def terms(args: argparse.Namespace) -> int:
    server = Server(args.server, args.token)
    current = server.terms()
    if args.action == "show":
        print(f"Terms of use {current['version']} (in force since {current['published_at'][:10]}; "
              f"{'accepted' if current['accepted'] else 'not accepted yet'}):\n\n{current['text']}")
        return 0
    accepted = server.terms_accept(args.version or current["version"])
    print(f"You accepted the terms of use {accepted['version']}.")
    return 0


# --------------------------------------------------------------------------- partner admins
def list_members(args: argparse.Namespace) -> int:
    mine = Server(args.server, args.token).organisation()
    print(f"{mine['partner']} ({mine['kind']})")
    for member in mine["members"]:
        tokens = ", ".join(f"{t['token_key']} {t['name']}" for t in member["tokens"]) or "no tokens"
        print(f"  {member['username']:<20} {member['role']:<7} {member['email'] or '-':<32} {tokens}")
    for invitation in mine["invitations"]:
        print(f"  invited: {invitation['email']} as {invitation['role']}, until {invitation['expires_at'][:10]}")
    return 0


def show_usage(args: argparse.Namespace) -> int:
    rows = Server(args.server, args.token).usage(args.days)
    print(f"{'day':<10}  {'size':<16} {'revision':<12} {'links':>7} {'bytes':>16}")
    for row in rows:
        print(f"{row['day']:<10}  {row['model_size']:<16} {row['revision'][:12]:<12} {row['links']:>7,} "
              f"{row['bytes']:>16,}")
    return 0


COMMANDS = {"download-model": download_model, "download-dataset": download_dataset, "grants": list_grants,
            "request-access": request_access, "terms": terms, "members": list_members,
            "usage": show_usage}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ServerRefused as exc:
        print(f"stagegate: refused: {exc.detail} [{exc.reason}]", file=sys.stderr)
        return EXIT_REFUSED
    except ChecksumMismatch as exc:
        print(f"stagegate: checksum mismatch: {exc}", file=sys.stderr)
        return EXIT_CHECKSUM
    except DownloadFailed as exc:
        print(f"stagegate: download failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except UnsafeFilename as exc:
        print(f"stagegate: refused to download: {exc}", file=sys.stderr)
        return EXIT_UNSAFE


if __name__ == "__main__":
    sys.exit(main())
