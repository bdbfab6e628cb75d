"""The row locks a link takes so that what `may` decided still holds when the link is recorded
(releases/access/rules.py, `may(lock=True)`). Per user and grant, never global: links of different partners,
and links of one partner without a quota, proceed side by side.

Written in SQL because the ORM has neither FOR SHARE nor advisory locks; SQLite serialises writers itself, so
there these lock nothing.
"""

from django.db import connection

from registry.models import ModelSize
from releases.access.models import AccessGrant, PartnerMember, PartnerOrganisation


def access_rows_share(user, size: ModelSize) -> None:
    """Share-lock the user's current membership, their partner and its grants for the size until the transaction
    ends. Links proceed side by side, yet a revocation, a deactivation or a departure (an UPDATE of one of those
    rows) waits for them to commit, and they wait for an uncommitted one; the facts are read after this, so
    they include whatever committed during the wait. Written out because the ORM has no FOR SHARE; SQLite
    serialises writers itself, so there this locks nothing.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("may(lock=True) must run inside a transaction: its locks last until the commit")
    if user is None or connection.vendor != "postgresql":
        return
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT 1 FROM {q(PartnerMember._meta.db_table)} m
            JOIN {q(PartnerOrganisation._meta.db_table)} p ON p.id = m.partner_id
            JOIN {q(AccessGrant._meta.db_table)} g ON g.partner_id = p.id AND g.model_size_id = %(size)s
            WHERE m.user_id = %(user)s AND m.left_at IS NULL
            FOR SHARE""", {"user": user.pk, "size": size.pk})


def quota_lock(grant: AccessGrant) -> None:
    """Links counted against one grant's quota are issued one after the other (until the caller commits).

    An advisory lock rather than FOR UPDATE on the grant row: the row is already held FOR SHARE, and two
    links upgrading their share locks at once would deadlock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_QUOTA_LOCK_CLASS, grant.pk])


# pg_advisory_xact_lock(int, int) key class for quota counting; two-key locks never meet one-key locks.
_QUOTA_LOCK_CLASS = int.from_bytes(b"SGQT", "big") >> 1
