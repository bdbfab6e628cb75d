"""Weights the registry stores: safetensors only, a bounded header, the tensors the size's hparams call for.

Refused files (pickles, pickle names, oversized or malformed headers, the wrong shapes) raise UnsafeWeights
(400, `unsafe_weights`) before anything reaches S3 or the database.
"""

import hashlib
import json
import pickle
import secrets
import struct
import subprocess
import sys

import pytest

from modelcore.safetensors_header import MAX_HEADER_BYTES, PREFIX, expected_shapes
from registry import revisions, storage
from registry.errors import UnsafeWeights
from registry.models import Artifact
from tests.releases.conftest import HPARAMS, make_size
from tests.weights import gpt2_safetensors, safetensors_bytes

pytestmark = pytest.mark.integration

SHAPES = {PREFIX + name: shape for name, shape in expected_shapes(**{k: HPARAMS[k] for k in (
    "n_vocab", "n_ctx", "n_embd", "n_layer")}).items()}


@pytest.fixture
def size(db):
    return make_size(f"weights-{secrets.token_hex(4)}")  # its own S3 prefix, whatever other tests stored


def _stored(data: bytes) -> bool:
    """Whether an object holds these bytes (files are stored under their content's key)."""
    try:
        storage.head(storage.blob_key(hashlib.sha256(data).hexdigest()))
    except storage.ObjectMissing:
        return False
    return True


def _refused(size, tmp_path, data: bytes, match: str, filename: str = "model.safetensors") -> UnsafeWeights:
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(UnsafeWeights, match=match) as refused:
        revisions.artifact_register(size=size, path=path)
    assert refused.value.http_status == 400 and refused.value.code == "unsafe_weights"
    assert not Artifact.objects.filter(model_size=size).exists()
    assert not _stored(data)
    return refused.value


def _header(entries: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_well_formed_weights_for_the_size_are_stored(size, s3, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(gpt2_safetensors(HPARAMS))
    artifact = revisions.artifact_register(size=size, path=path)
    assert artifact.format == Artifact.Format.SAFETENSORS and _stored(path.read_bytes())
    assert artifact.s3_key == storage.blob_key(artifact.sha256)


def test_weights_of_another_shape_are_refused(size, s3, tmp_path):
    error = _refused(size, tmp_path, gpt2_safetensors({**HPARAMS, "n_embd": 64}),
                     r"tensor 'transformer\.wte\.weight' is F16 \[512, 64\], expected a float \[512, 32\]")
    assert size.slug in error.message and "width 32" in error.message
    deeper = gpt2_safetensors({**HPARAMS, "n_layer": 3})
    _refused(size, tmp_path, deeper, r"unexpected tensor 'transformer\.h\.2\.")
    shallower = safetensors_bytes({k: v for k, v in SHAPES.items() if ".h.1." not in k})
    _refused(size, tmp_path, shallower, r"missing tensors \['h\.1\.")


def test_integer_weights_are_refused(size, s3, tmp_path):
    _refused(size, tmp_path, gpt2_safetensors(HPARAMS, dtype="I16"), r"is I16 .*expected a float")


def test_a_pickle_named_safetensors_is_refused_without_being_unpickled(size, s3, tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    _refused(size, tmp_path, pickle.dumps({"wte.weight": [0.0] * 16}), "is a pickle")
    _refused(size, tmp_path, pickle.dumps(Payload()), "is a pickle")
    _refused(size, tmp_path, b"PK\x03\x04" + bytes(60), "is a pickle")  # torch.save's zip archive
    _refused(size, tmp_path, pickle.dumps([1, 2], protocol=0), "exceeds the")  # text pickles fail the bound
    assert not sentinel.exists()


@pytest.mark.parametrize("filename", ["pytorch_model.bin", "model.pt", "model.pth", "weights.pkl", "model.ckpt",
                                      "MODEL.BIN"])
def test_pickle_file_names_are_refused_whatever_they_hold(size, s3, tmp_path, filename):
    _refused(size, tmp_path, gpt2_safetensors(HPARAMS), "pickled weights .* are never accepted", filename=filename)


def test_an_oversized_header_is_refused(size, s3, tmp_path):
    weights = gpt2_safetensors(HPARAMS, metadata={"format": "pt", "padding": " " * MAX_HEADER_BYTES})
    assert struct.unpack("<Q", weights[:8])[0] > MAX_HEADER_BYTES  # a real header, just too big
    _refused(size, tmp_path, weights, f"exceeds the {MAX_HEADER_BYTES}-byte bound")
    _refused(size, tmp_path, struct.pack("<Q", 2**63) + b"{}", f"exceeds the {MAX_HEADER_BYTES}-byte bound")


@pytest.mark.parametrize(("data", "match"), [
    (b"", "too short"),
    (struct.pack("<Q", 100) + b"{}", "runs past the end"),
    (_header([]), "not a JSON object"),
    (struct.pack("<Q", 9) + b'{"a": 1,}', "not JSON"),
    (_header({"__metadata__": {"n": 1}}), "__metadata__ must map names to strings"),
    (_header({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 2]}}, bytes(2)), "no known dtype"),
    (_header({"w": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}, bytes(2)), "malformed shape"),
    (_header({"w": {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}}, bytes(4)), "malformed data_offsets"),
    (_header({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 2]}}, bytes(2)), "do not match its dtype"),
    (_header({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
              "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, bytes(6)), "overlaps another"),
    (_header({"a": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]}}, bytes(8)), "leaves a gap"),
    (_header({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, bytes(5)), "cover 4 bytes but"),
], ids=["empty", "truncated", "array", "bad-json", "metadata", "dtype", "shape", "offsets", "size", "overlap",
        "gap", "trailing-bytes"])
def test_malformed_headers_are_refused(size, s3, tmp_path, data, match):
    _refused(size, tmp_path, data, match)


def test_the_check_reads_headers_without_torch():
    code = ("import sys, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.test'; django.setup();"
            "import registry.services, registry.weights; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_expected_shapes_are_those_modelcore_exports(tmp_path):
    torch = pytest.importorskip("torch")
    from modelcore.export import load_safetensors_checked, to_hf_state
    from modelcore.model import GPT, GPTConfig

    config = GPTConfig(**HPARAMS)
    with torch.device("meta"):
        exported = {name: tuple(t.shape) for name, t in to_hf_state(GPT(config)).items()}
    assert exported == SHAPES
    path = tmp_path / "model.safetensors"
    path.write_bytes(gpt2_safetensors(HPARAMS, dtype="F32"))  # what the registry accepts, modelcore loads
    assert set(load_safetensors_checked(path, config)) == set(GPT(config).state_dict())
