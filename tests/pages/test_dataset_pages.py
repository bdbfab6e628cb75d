"""The dataset catalogue and a dataset's page: splits, statistics, sample rows, plots; removal requests."""

import pytest

from registry.models import DataRemovalRequest

pytestmark = pytest.mark.integration


def test_the_catalogue_lists_published_datasets_and_detection_beside_gpt2s(client, datasets):
    html = client.get("/datasets/").content.decode()
    assert 'href="/datasets/mini-1m-k40/"' in html and 'href="/datasets/mini-1m-reference/"' in html
    assert "mini-1m-draft" not in html
    assert 'src="/datasets/detection.svg"' in html and "mini-1m 71% pure, 93% top-k 40" in html
    assert "0.8829" in html and "0.9269" in html  # GPT-2's published table
    svg = client.get("/datasets/detection.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content


def test_a_dataset_page_shows_splits_statistics_sample_rows_and_plots(client, datasets):
    dataset = datasets["mini-1m-k40"]
    html = client.get("/datasets/mini-1m-k40/").content.decode()
    for part in dataset.splits.all():
        assert part.sha256 in html and f"http://testserver/gpt-2/output-dataset/v1/{part.filename}" in html
    assert "mini-1m-k40 valid line 0" in html  # the sample, read from storage
    assert f"{dataset.stats['mean_length']}" in html and "top-k 40 sampling" in html
    assert "0.9300" in html and 'href="/models/mini-1m/"' in html
    for kind in ("lengths", "ended"):
        assert f'src="/datasets/mini-1m-k40/plots/{kind}.svg"' in html
        svg = client.get(f"/datasets/mini-1m-k40/plots/{kind}.svg")
        assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert client.get("/datasets/mini-1m-k40/plots/other.svg").status_code == 404


def test_an_unpublished_dataset_page_is_404_except_to_staff(client, datasets, alice):
    assert client.get("/datasets/mini-1m-draft/").status_code == 404
    assert client.get("/datasets/mini-1m-draft/plots/lengths.svg").status_code == 404
    client.force_login(alice)
    assert "stage-internal" in client.get("/datasets/mini-1m-draft/").content.decode()


def _removal(client, **overrides):
    data = {"name": "Ada", "email": "ada@example.org", "dataset": "mini-1m", "text": "line 3 of mini-1m.valid",
            "reason": "It quotes my private letter.", **overrides}
    return client.post("/datasets/removal/", data)


def test_a_removal_request_is_stored_confirmed_and_listed_for_staff(client, datasets, alice):
    assert client.get("/datasets/removal/?dataset=mini-1m").status_code == 200
    response = _removal(client)
    assert response.status_code == 302 and response["Location"] == "/datasets/removal/sent/"
    assert "Request received" in client.get(response["Location"]).content.decode()
    stored = DataRemovalRequest.objects.get()
    assert (stored.dataset.name, stored.email, stored.status, stored.ip) == ("mini-1m", "ada@example.org", "open",
                                                                             "127.0.0.1")
    client.force_login(alice)
    listing = client.get("/admin/registry/dataremovalrequest/")
    assert listing.status_code == 200 and "ada@example.org" in listing.content.decode()


def test_a_removal_request_needs_csrf_and_valid_fields(datasets):
    from django.test import Client

    assert Client(enforce_csrf_checks=True).post("/datasets/removal/", {"name": "x"}).status_code == 403
    response = _removal(Client(), email="not-an-email", dataset="mini-1m-draft")
    assert response.status_code == 200 and not DataRemovalRequest.objects.exists()
    assert "Enter a valid email address." in response.content.decode()


def test_removal_requests_are_rate_limited(client, datasets, settings):
    settings.STAGEGATE_REMOVAL_RATE = "2/hour"
    assert [_removal(client).status_code for _ in range(3)] == [302, 302, 429]
    assert int(_removal(client)["Retry-After"]) > 0
    assert DataRemovalRequest.objects.count() == 2
