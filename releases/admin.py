"""The release app's admins, one module per concern; Django's admin discovery imports this module."""

from releases.access import admin as access_admin  # noqa: F401
from releases.audit import admin as audit_admin  # noqa: F401
from releases.governance import admin as governance_admin  # noqa: F401
from releases.outbox import admin as outbox_admin  # noqa: F401
