"""The release stages of a model size, the transitions between them and the approvals each needs."""

from django.db import models


class Stage(models.TextChoices):
    INTERNAL = "internal", "Internal"
    PARTNERS = "partners", "Partners"
    PUBLIC = "public", "Public"
    WITHDRAWN = "withdrawn", "Withdrawn"
