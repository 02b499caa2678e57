import subprocess
import sys
from collections import Counter

from pave.serving.deployments import Deployment, ModelRef
from pave.serving.router import Router, key_position


def canary(weights):
    return Deployment(
        "m", tuple(ModelRef(v, f"models:/m/{v}", w) for v, w in weights.items()), sticky="x-user"
    )


def test_weighted_split_is_exact_over_any_ten_requests():
    router = Router(canary({"1": 90, "2": 10}))
    picks = [router.pick() for _ in range(1000)]
    assert Counter(picks) == {"1": 900, "2": 100}
    for start in range(0, 1000, 10):
        assert picks[start : start + 10].count("2") == 1


def test_zero_weight_versions_get_no_unversioned_traffic():
    router = Router(canary({"1": 1, "2": 0}))
    assert {router.pick() for _ in range(50)} == {"1"}


def test_sticky_key_always_lands_on_the_same_version():
    router = Router(canary({"1": 50, "2": 50}))
    for user in range(200):
        first = router.pick(f"user-{user}")
        assert all(router.pick(f"user-{user}") == first for _ in range(5))


def test_sticky_keys_spread_by_weight():
    router = Router(canary({"1": 80, "2": 20}))
    counts = Counter(router.pick(f"user-{i}") for i in range(4000))
    assert 0.17 < counts["2"] / 4000 < 0.23


def test_sticky_hash_is_stable_across_processes():
    code = "from pave.serving.router import key_position; print(repr(key_position('m', 'user-7')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == key_position("m", "user-7")


def test_sticky_key_from_header_or_parameters():
    router = Router(canary({"1": 1, "2": 1}))
    assert router.sticky_key([(b"x-user", b"ann")], {}) == "ann"
    assert router.sticky_key([], {"x-user": 12}) == "12"
    assert router.sticky_key([(b"other", b"v")], {}) is None
