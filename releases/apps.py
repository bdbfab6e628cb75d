from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases and access"

    def ready(self) -> None:
        from releases import registry_events  # noqa: F401  (connects the receivers of the registry's signals)
