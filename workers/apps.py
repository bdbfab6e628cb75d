from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers and jobs"

    def ready(self) -> None:
        # Registers the job tasks with Celery in every process (web ones too): workers/services.py hands jobs
        # to them by registered name.
        from workers import tasks  # noqa: F401
        from workers.study import runner  # noqa: F401  (connects the study's receiver of job_finished)
