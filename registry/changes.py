"""Saving and deleting registry records so that each change is announced (registry/signals.py `record_changed`,
which releases/ audits) with who made it, from where, and which fields moved from what to what.

Revisions and their files are not saved here: they never change, and are announced as they are made
(registry/revisions.py).
"""

import json
from collections.abc import Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from registry.signals import record_changed


def record_fields(obj: models.Model, fields: Sequence[str]) -> dict:
    """The named fields as a reviewer reads them, in JSON: a related record by its name, dates in ISO 8601."""
    shown = {}
    for name in fields:
        field = obj._meta.get_field(name)
        if field.is_relation and getattr(obj, field.attname) is not None:
            shown[name] = str(getattr(obj, name))
        else:
            shown[name] = field.value_from_object(obj)
    return json.loads(json.dumps(shown, cls=DjangoJSONEncoder))


def record_announce(obj: models.Model, action: str, *, actor, before: dict | None, after: dict | None,
                    ip: str | None = None, data: dict | None = None) -> None:
    record_changed.send(sender=type(obj), instance=obj, action=action, actor=actor, before=before, after=after,
                        ip=ip, data=data)


def _raw(obj: models.Model, name: str):
    return obj._meta.get_field(name).value_from_object(obj)


@transaction.atomic
def record_save(obj: models.Model, *, noun: str, fields: Sequence[str], actor, ip: str | None = None,
                data: dict | None = None) -> bool:
    """Save `obj`, which holds its new values, and announce `<noun>.created` or `<noun>.updated` with the fields
    among `fields` that moved. An existing record is written only in the fields that moved (a concurrent edit of
    another field, or a field kept by another app such as a stage, is not overwritten), and not at all, nor
    announced, when none did. Returns whether anything was saved."""
    model = type(obj)
    # Locked, so `before` is what this save replaces even when two people save the same record at once.
    current = model.objects.select_for_update().filter(pk=obj.pk).first() if obj.pk is not None else None
    if current is None:
        obj.save()
        record_announce(obj, f"{noun}.created", actor=actor, before=None, after=record_fields(obj, fields), ip=ip,
                        data=data)
        return True
    moved = [name for name in fields if _raw(current, name) != _raw(obj, name)]
    if not moved:
        return False
    touched = [f.name for f in model._meta.concrete_fields if getattr(f, "auto_now", False)]
    obj.save(update_fields=[*moved, *touched])
    record_announce(obj, f"{noun}.updated", actor=actor, before=record_fields(current, moved),
                    after=record_fields(obj, moved), ip=ip, data=data)
    return True


@transaction.atomic
def record_delete(obj: models.Model, *, noun: str, fields: Sequence[str], actor, ip: str | None = None) -> None:
    """Delete `obj`, announced with what it held. Announced first, while it still has its id: if the delete is
    refused (a protected relation), the announcement rolls back with it."""
    record_announce(obj, f"{noun}.deleted", actor=actor, before=record_fields(obj, fields), after=None, ip=ip)
    obj.delete()
