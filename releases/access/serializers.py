"""Output shapes of the download API: manifests and signed links."""

from rest_framework import serializers

from releases.stage_names import Stage


class LinkOutput(serializers.Serializer):
    url = serializers.URLField(help_text="Presigned GET straight to object storage; an attachment download.")
    expires_at = serializers.DateTimeField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class QuotaUseOutput(serializers.Serializer):
    limit = serializers.IntegerField(help_text="Links allowed per file in any window of period_s seconds.")
    period_s = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    retry_after_s = serializers.IntegerField(help_text="Seconds until the next link is allowed; 0 while some remain.")


class ManifestFileOutput(serializers.Serializer):
    filename = serializers.CharField(source="artifact.filename")
    bytes = serializers.IntegerField(source="artifact.bytes")
    sha256 = serializers.CharField(source="artifact.sha256")
    format = serializers.CharField(source="artifact.format")
    quota = QuotaUseOutput(allow_null=True)


class GrantOutput(serializers.Serializer):
    id = serializers.IntegerField()
    partner = serializers.CharField(source="partner.name")
    purpose = serializers.CharField()
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    quota_links = serializers.IntegerField(allow_null=True)
    quota_period_s = serializers.IntegerField(allow_null=True)


class AccessOutput(serializers.Serializer):
    basis = serializers.CharField(source="reason", help_text="staff, public or grant")
    detail = serializers.CharField()
    terms_version = serializers.CharField(source="terms.version", allow_null=True, default=None)


class ManifestOutput(serializers.Serializer):
    model = serializers.CharField(source="size.slug")
    display_name = serializers.CharField(source="size.display_name")
    stage = serializers.ChoiceField(source="size.stage", choices=Stage.choices)
    access = AccessOutput(source="decision")
    grant = GrantOutput(source="decision.grant", allow_null=True)
    link_ttl_s = serializers.IntegerField()
    files = ManifestFileOutput(many=True)
