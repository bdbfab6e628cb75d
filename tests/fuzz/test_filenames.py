"""Client-supplied file names, fuzzed: only one plain path segment ever reaches an object key, and the API
answers every hostile name with a 4xx, never a link and never a 5xx.
"""

import hashlib
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from registry import storage
from registry.filenames import validate_filename
from tests.releases.conftest import make_size

SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
HOSTILE_PARTS = ["..", "/", "\\", "%2e%2e", "%2F", "%5c", "%00", "\x00", "..%2f", "%252e%252e", "~", ":", "\n",
                 "\u2215", "\uff0e\uff0e", "\u202e", "C:\\", "//", "?", "#", " "]

hostile = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(HOSTILE_PARTS), st.text(alphabet=sorted(SAFE), max_size=8)),
             max_size=8).map("".join),
)


@given(hostile)
@settings(max_examples=1000, deadline=None)
@example("../etc/passwd")
@example("/etc/passwd")
@example("model.safetensors\x00.png")
@example("..%2F..%2Fsecret")
@example("%2e%2e")
def test_a_name_that_passes_is_one_plain_segment(name):
    try:
        validate_filename(name)
    except ValidationError:
        return
    assert set(name) <= SAFE
    assert ".." not in name and not name.startswith((".", "-", "_"))
    assert 0 < len(name) <= 255


@pytest.mark.django_db
@given(hostile)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_only_one_plain_segment_passes_and_no_name_ever_reaches_an_object_key(name):
    """Keys are the bytes' sha256 (registry/storage.py blob_key): a client's name is checked, never used in one."""
    try:
        validate_filename(name)
    except ValidationError:
        return
    assert "/" not in name and "\\" not in name and ".." not in name and "\x00" not in name and name[0].isalnum()
    assert storage.blob_key(hashlib.sha256(name.encode()).hexdigest()).startswith(storage.BLOB_PREFIX)


@pytest.fixture
def stored(api, s3, alice, tmp_path):
    """A size with model.safetensors in SeaweedFS; staff pass `may`, so only the file name decides."""
    from tests.releases.conftest import upload

    size = make_size()
    upload(size, tmp_path)
    api.force_authenticate(alice)
    control = api.post(f"/api/v1/models/{size.slug}/files/model.safetensors/link/")
    assert control.status_code == 200 and "url" in control.json()  # the plain name does get a link
    return size


@pytest.mark.django_db
@given(hostile)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example("..%2Fmodel.safetensors")
@example("%2e%2e%2fmodel.safetensors")
@example("./model.safetensors")
@example("model.safetensors\x00")
@example("models/x/model.safetensors")
@example("%2fmodel.safetensors")
def test_hostile_names_in_link_urls_get_a_4xx_and_no_link(api, stored, name):
    from releases.models import IssuedLink

    assume(name != "model.safetensors")
    issued = IssuedLink.objects.count()
    for encoded in (quote(name, safe=""), quote(quote(name, safe=""), safe=""), quote(name, safe="%/")):
        response = api.post(f"/api/v1/models/{stored.slug}/files/{encoded}/link/")
        assert 400 <= response.status_code < 500, (name, response.status_code)
        assert "url" not in (response.json() if response.headers.get("Content-Type", "").startswith(
            "application/json") else {})
    assert IssuedLink.objects.count() == issued
