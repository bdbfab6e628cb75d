"""The names of the release stages: plain constants, imported by the registry (which records each size's stage)
as well as by the rules in releases/stages.py. Nothing else lives here, so the registry depends on no rule."""

from django.db import models


class Stage(models.TextChoices):
    INTERNAL = "internal", "Internal"
    PARTNERS = "partners", "Partners"
    PUBLIC = "public", "Public"
    WITHDRAWN = "withdrawn", "Withdrawn"
