"""Validation of client-supplied names: file names (they become parts of object keys and paths) and slugs from
query strings (checked before they reach a query: a NUL byte there is a database error on PostgreSQL)."""

import re

from django.core.exceptions import ValidationError

MAX_FILENAME_CHARS = 255
# One path segment of plain characters; no separators, no encodings, no control bytes.
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


def is_slug(text: object) -> bool:
    return isinstance(text, str) and _SLUG.fullmatch(text) is not None


def validate_filename(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValidationError("A file name is required.")
    if len(name) > MAX_FILENAME_CHARS:
        raise ValidationError(f"A file name may have at most {MAX_FILENAME_CHARS} characters.")
    if ".." in name or not _FILENAME.fullmatch(name):
        raise ValidationError(
            "A file name may contain only letters, digits, '.', '_' and '-', must start with a letter "
            "or digit, and may not contain '..'."
        )
