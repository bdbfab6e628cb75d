"""The release app's models, one module per concern; Django looks for them here."""

from releases.access.models import (  # noqa: F401
    AccessGrant,
    AccessQuestion,
    AccessRequest,
    GrantExpiryNotice,
    IssuedLink,
    PartnerActivity,
    PartnerApplication,
    PartnerInvitation,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
    TokenLabel,
)
from releases.audit.models import AuditCheckpoint, AuditEvent  # noqa: F401
from releases.governance.models import (  # noqa: F401
    DatasetPublication,
    SizeRelease,
    StageChange,
    StageChangeRequest,
    StageDecision,
    StageRequestComment,
    StageReview,
)
from releases.outbox.models import OutboxMessage, WebhookSubscription  # noqa: F401
