"""svckit.metrics helpers: ``observe_many`` is exactly ``count`` observe() calls."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from svckit.metrics import LATENCY_BUCKETS, observe_many


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h_seconds", "h", buckets=LATENCY_BUCKETS, registry=registry)


def test_observe_many_matches_single_observations_bucket_by_bucket() -> None:
    (one_reg, one), (many_reg, many) = _histogram(), _histogram()
    for amount, count in ((0.042, 5), (3.0, 2), (0.0, 1), (99.0, 3), (0.25, 0)):
        for _ in range(count):
            one.observe(amount)
        observe_many(many, amount, count)
    assert _samples(one_reg) == _samples(many_reg)
    assert 11 == many_reg.get_sample_value("h_seconds_count")


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but the creation time (which differs between the two histograms)."""
    return [
        (s.name, s.labels, s.value)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    ]


class _Plain:
    """A histogram-like object without prometheus-client's internals."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def observe(self, amount: float) -> None:
        self.seen.append(amount)


def test_observe_many_falls_back_to_observe_without_the_internals() -> None:
    plain = _Plain()
    observe_many(plain, 0.5, 3)  # type: ignore[arg-type]
    assert [0.5, 0.5, 0.5] == plain.seen
