"""Numbers as people read them: thousands separators, percentages that do not round 99.5% up to 100%, and
durations in the largest whole unit ("1 day", not "86400 s")."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

_UNITS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


@register.filter
def thousands(value) -> str:
    """12345678 → "12,345,678"."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def percent(fraction) -> str:
    """0.995 → "99.5%", 1 → "100%", 0.5 → "50%": one decimal unless whole, and never 100% short of all."""
    try:
        value = float(fraction) * 100
    except (TypeError, ValueError):
        return "–"
    shown = round(value, 1)
    if shown == 100 and value < 100:
        shown = 99.9
    return f"{shown:.0f}%" if shown == int(shown) else f"{shown:.1f}%"


@register.filter
def duration(seconds) -> str:
    """86400 → "1 day", 7200 → "2 hours", 90 → "90 seconds": the largest unit that divides it exactly."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    for name, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count:,} {name}{'' if count == 1 else 's'}"
    return "0 seconds"


@register.filter
def per_duration(seconds) -> str:
    """86400 → "day", 3600 → "hour", 7200 → "2 hours": after "per"."""
    text = duration(seconds)
    return text.removeprefix("1 ") if text.startswith("1 ") else text


@register.filter
def code_spans(text) -> str:
    """The access rule's messages mark code with backticks (they are API text too): on a page, `x` is <code>x</code>
    rather than literal backticks. Everything else is escaped."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(str(text))))  # noqa: S308 - escaped first
