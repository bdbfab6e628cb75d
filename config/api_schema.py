"""The OpenAPI description: drf-spectacular's, with a summary for every operation (the first sentence of its
docstring) and the errors every operation can answer, so a client reads what can go wrong next to what goes
right.

Views list their own refusals with `extend_schema(responses=…)`; what all operations share is added here:
400 for a body or query that does not validate, 401/403 where the caller must be someone, 404 where the path
names something, 429 where a rate limit applies. Documenting a code the operation never returns would mislead,
so only these general ones are added, and only where they apply.
"""

import re

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

from config.api_errors import ErrorOutput


class StagegateAutoSchema(AutoSchema):
    def get_summary(self) -> str | None:
        summary = super().get_summary()
        if summary:
            return summary
        doc = (getattr(self.view, self.method.lower(), None).__doc__ or self.view.__class__.__doc__ or "").strip()
        first = re.split(r"(?<=[.:;])\s", " ".join(doc.split()), maxsplit=1)[0] if doc else ""
        return first.rstrip(".:;") or None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in self._general_errors():
            if status not in responses and str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(ErrorOutput, str(status))
        return responses

    def _general_errors(self) -> list[int]:
        codes = []
        # (Asking for the request serializer here would make drf-spectacular guess one for every plain APIView.)
        if self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters():
            codes.append(400)
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes += [401, 403]
        if "{" in self.path:
            codes.append(404)
        if getattr(self.view, "throttle_classes", None):
            codes.append(429)
        return codes
