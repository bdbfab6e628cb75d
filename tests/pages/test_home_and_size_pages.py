"""The home page (families, stages, timeline) and a size's page (history, card, evals, files or why not)."""

import pytest
from django.core.management import call_command

from registry.models import EvalResult, ModelCard, TrainingRun
from tests.releases.conftest import make_grant, make_partner, make_size, move, publish_terms, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpt2(db):
    call_command("seed_gpt2", verbosity=0)


def test_home_lists_families_with_stages_and_gpt2s_2019_timeline(client, gpt2):
    html = client.get("/").content.decode()
    assert "GPT-2" in html and 'href="/models/gpt2-124m/"' in html
    assert "stage-public" in html
    # The timeline across the family, in date order.
    first, last = html.index("2019-02-14"), html.index("2019-11-05")
    assert first < html.index("2019-08-20") < last
    assert "Released as the first stage of a staged release" in html
    for link in ('href="/datasets/"', 'href="/history/"', 'href="/portal/"'):
        assert link in html


def test_a_public_size_page_shows_history_card_evals_and_files(client, s3, tmp_path):
    from registry.seed_data import gpt2_family_seed
    from releases.governance.seed_history import gpt2_history_record

    size = next(size for size in gpt2_family_seed() if size.slug == "gpt2-1558m")
    artifact = upload(size, tmp_path, "config.json", b'{"n_layer": 48}')  # before its stages: files never change after
    gpt2_history_record()
    html = client.get("/models/gpt2-1558m/").content.decode()
    assert "Released as the final stage" in html and "2019-11-05" in html
    assert ModelCard.objects.get(model_size=size).details[:40] in html
    evals = EvalResult.objects.filter(model_size=size)
    assert evals.exists() and evals.first().dataset in html
    assert artifact.sha256 in html
    assert f'href="/api/v1/models/gpt2-1558m/files/config.json?revision={artifact.revision.revision}"' in html


def test_a_partners_size_tells_the_public_why_not_and_how_to_ask(client, s3, alice, bob, rita, tmp_path):
    size = make_size("mini-3m")
    artifact = upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    html = client.get("/models/mini-3m/").content.decode()
    assert artifact.sha256 not in html
    assert "available to partners holding a grant" in html and 'href="/portal/login/?next=/models/mini-3m/"' in html
    client.force_login(rita)
    html = client.get("/models/mini-3m/").content.decode()
    assert "belongs to no partner organisation" in html
    assert "Apply for your organisation to become a partner" in html  # rita is in no organisation


def test_a_partner_downloads_from_the_size_page_with_a_form_that_posts(s3, alice, bob, pat, tmp_path):
    """Issue #20, defect 1: the size page's file links went to the portal's POST-only view and answered 405."""
    import re

    from django.test import Client

    from releases.models import IssuedLink

    size = make_size("mini-3m")
    artifact = upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    make_grant(make_partner(alice, pat), size, alice)
    publish_terms(alice, "v1", pat)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(pat)
    html = browser.get("/models/mini-3m/").content.decode()
    action = f"/portal/files/mini-3m/model.safetensors?revision={artifact.revision.revision}"
    assert f'<form method="post" action="{action}"' in html and f'href="{action}"' not in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    download = browser.post(action, {"csrfmiddlewaretoken": token})
    assert download.status_code == 302 and download["Location"].startswith(s3.endpoint_url)
    assert IssuedLink.objects.get().user == pat
    assert browser.post(action).status_code == 403  # without the form's CSRF token: nothing issued
    assert IssuedLink.objects.count() == 1


def test_an_internal_size_is_404_except_to_staff(client, alice):
    make_size("mini-13m")
    assert client.get("/models/mini-13m/").status_code == 404
    client.force_login(alice)
    assert client.get("/models/mini-13m/").status_code == 200


def _run(size):
    curve = [{"step": s, "lr": 1e-3, "train_loss": 5.0 - s / 50, "elapsed_s": s / 10, **({"val_loss": 5.1 - s / 50}
              if s % 50 == 0 else {})} for s in range(0, 201, 10)]
    return TrainingRun.objects.create(model_size=size, corpus="shared/corpora/shakespeare.txt", steps=200,
                                      settings={"steps": 200, "batch_size": 8, "lr": 0.001}, final_val_loss=1.1,
                                      loss_curve=curve)


def test_the_training_run_page_shows_loss_curve_hparams_corpus_and_artifacts(client, s3, alice, bob, carol, tmp_path):
    size = make_size("mini-1m")
    run = _run(size)
    artifact = upload(size, tmp_path, "loss-curve.png", b"\x89PNG fake")
    artifact.training_run = run
    artifact.save()
    assert client.get(f"/runs/{run.pk}/").status_code == 404  # the size is internal
    move(size, "public", requester=alice, approvers=[bob, carol])
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "shared/corpora/shakespeare.txt" in html and "batch_size" in html and "1.1000" in html
    assert f'src="/runs/{run.pk}/loss-curve.svg"' in html and 'alt="Training loss and validation loss' in html
    assert artifact.sha256 in html
    svg = client.get(f"/runs/{run.pk}/loss-curve.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert f'href="/runs/{run.pk}/"' in client.get("/models/mini-1m/").content.decode()


def test_unknown_pages_and_hidden_sizes_get_the_sites_own_404_page_and_the_api_json(client, db):
    """Issue #20, defect 10: they showed Django's bare "Not Found"."""
    make_size("mini-13m")  # internal
    for url in ("/no-such-page/", "/models/mini-13m/", "/models/mini-99m/"):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 404 and "<h1>Not found</h1>" in html
        assert 'href="/datasets/"' in html and 'href="/portal/"' in html  # the site's navigation
    assert client.get("/models/mini-13m/").content == client.get("/models/mini-99m/").content.replace(
        b"/models/mini-99m/", b"/models/mini-13m/")  # a hidden size says no more than a missing one
    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api.json()["error"] == "not_found"


def test_a_page_a_staff_role_may_not_open_is_the_sites_403_page(client, alice, rita):
    client.force_login(alice)  # policy staff: accounts are theirs to read, not to change
    assert client.get(f"/admin/auth/user/{rita.pk}/change/").status_code == 200
    response = client.get(f"/admin/auth/user/{rita.pk}/password/")
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in response.content.decode() and 'href="/admin/"' in response.content.decode()


def test_a_released_size_without_files_says_so_rather_than_zero_files(client, alice, bob):
    size = make_size("mini-3m")
    move(size, "partners", requester=alice, approvers=[bob])
    html = client.get("/models/mini-3m/").content.decode()
    assert "No files are stored for this size yet." in html and "0 files" not in html


def test_the_history_page_links_each_size(client, gpt2):
    html = client.get("/history/").content.decode()
    assert '<h2><a href="/models/gpt2-124m/">' in html


def test_a_run_page_explains_why_its_validation_loss_and_evaluation_perplexity_differ(client, s3, alice, bob,
                                                                                      carol, tmp_path):
    """Issue #20, defect 11."""
    size = make_size("mini-1m")
    upload(size, tmp_path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    run = _run(size)
    EvalResult.objects.create(model_size=size, training_run=run, dataset="shakespeare (held out)",
                              metric="perplexity", value=2.71)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="loss-vs-perplexity"' in html and "a perplexity of 3.00" in html and "20 fixed batches" in html
