"""Validation of client-supplied file names: they become parts of object keys and paths."""

import re

from django.core.exceptions import ValidationError

MAX_FILENAME_CHARS = 255
# One path segment of plain characters; no separators, no encodings, no control bytes.
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
