"""`manage.py study`: run (or resume) a scaling study and follow it to the end (workers/study/)."""

import time

from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from workers import services
from workers.models import Job, Study

SETTINGS = ("family", "corpus", "eval_corpus", "tokens_per_parameter", "max_tokens", "batch_size", "lr", "seed",
            "max_length")


def _samples(raw: str) -> dict:
    try:
        train, valid, test = (int(part) for part in raw.split(","))
    except ValueError:
        raise CommandError(f"--samples {raw!r}: three counts, train,valid,test (e.g. 280,40,200)") from None
    return {"train": train, "valid": valid, "test": test}


class Command(BaseCommand):
    help = ("Train every size of a family under one compute rule, evaluate each on held-out text and WikiText-2, "
            "generate pure and top-k 40 datasets, run the detection baseline, and publish the study page. "
            "Rerunning a study skips what is done.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", help="the study's name (default: <family>-study); an existing study's name "
                                           "resumes it with its own settings")
        parser.add_argument("--family", help="default: mini")
        parser.add_argument("--corpus", help="training corpus (default: the platform's default corpus)")
        parser.add_argument("--eval-corpus", dest="eval_corpus",
                            help="held-out evaluation text (default: wikitext-2/test.txt where present; '' for none)")
        parser.add_argument("--tokens-per-parameter", dest="tokens_per_parameter", type=float)
        parser.add_argument("--max-tokens", dest="max_tokens", type=int, help="the cap on each size's tokens")
        parser.add_argument("--batch-size", dest="batch_size", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--samples", type=_samples, help="samples per split of each dataset: train,valid,test")
        parser.add_argument("--max-length", dest="max_length", type=int, help="tokens per sample")
        parser.add_argument("--no-wait", action="store_true", help="start it and return")
        parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to follow it (default 6 h)")

    def handle(self, *args, **options) -> None:
        given = {key: options[key] for key in (*SETTINGS, "samples") if options[key] is not None}
        name = options["name"] or f"{given.get('family', 'mini')}-study"
        study = Study.objects.select_related("job").filter(name=name).first()
        if study is not None and study.job is not None and study.job.status in (Job.Status.QUEUED,
                                                                                Job.Status.RUNNING):
            self.stdout.write(f"Study {name} is running (job {study.job.pk}); following it.")
            job = study.job
        else:
            params = {**(study.params if study is not None else {}), **given, "name": name}
            try:
                job = services.job_submit(kind=Job.Kind.STUDY, params=params)
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"{'Resumed' if study else 'Started'} study {name} (job {job.pk}).")
        if options["no_wait"]:
            self.stdout.write(f"Follow it with: manage.py job wait {job.pk}; its page: /study/{name}/")
            return
        self._follow(job, name, options["timeout"])

    def _follow(self, job: Job, name: str, timeout_s: float) -> None:
        started, seen = time.monotonic(), None
        while time.monotonic() - started < timeout_s:
            job.refresh_from_db()
            study = Study.objects.filter(name=name).first()
            steps = ([(s.key, s.job.status) for s in study.steps.select_related("job")] if study else [])
            state = (job.status, job.progress_done, job.progress_total, steps)
            if state != seen:
                seen = state
                running = ", ".join(key for key, status in steps if status in (Job.Status.QUEUED, Job.Status.RUNNING))
                self.stdout.write(f"[{time.monotonic() - started:7.0f} s] {job.progress_done}/{job.progress_total} "
                                  f"steps done{'; running: ' + running if running else ''}")
            if job.status == Job.Status.SUCCEEDED:
                self.stdout.write(f"Study {name} complete in {time.monotonic() - started:.0f} s. "
                                  f"Its page: /study/{name}/")
                return
            if job.status in Job.FINISHED:
                raise CommandError(f"Study {name} {job.status}: {job.error or 'no reason recorded'} "
                                   f"(run `manage.py study --name {name}` again to resume it)")
            time.sleep(2)
        raise CommandError(f"Study {name} still running after {timeout_s:.0f} s; it goes on (job {job.pk}).")
