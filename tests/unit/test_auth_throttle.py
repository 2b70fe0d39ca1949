"""The auth service's view of a gRPC caller's address, which its per-IP limits key on."""

from __future__ import annotations

import pytest

from auth_service.api.throttle import peer_host


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:203.0.113.7:50123", "203.0.113.7"),
        ("ipv6:[2001:db8::1]:50123", "2001:db8::1"),
        ("ipv6:[::1]:1", "::1"),
        ("unix:/run/minitg.sock", "unix:/run/minitg.sock"),
        ("", "unknown"),
    ],
)
def test_peer_host(peer: str, host: str) -> None:
    """A peer string's port is dropped; the host alone is the rate-limit key."""
    assert host == peer_host(peer)
