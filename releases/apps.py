from django.apps import AppConfig


def _token_label(token) -> str:
    return f"token {token.token_key}… of {token.user}"


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases and access"

    def ready(self) -> None:
        from knox.models import AuthToken

        from releases import registry_events  # noqa: F401  (connects the receivers of the registry's signals)

        # knox names a token by its digest, which the admin then prints wherever it names the object (a user's
        # delete confirmation, "Recent actions", log lines). The public prefix names it as well and gives
        # nothing away.
        AuthToken.__str__ = _token_label
