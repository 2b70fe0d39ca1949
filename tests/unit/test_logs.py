"""Request ids: fresh ones are unique and well-formed; a sane incoming one is kept."""

from __future__ import annotations

import string

from svckit.logs import bind_request_id, new_request_id, request_id_var


def test_fresh_request_ids_are_unique_16_hex_digits() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and set(i) <= set(string.hexdigits) for i in ids)


def test_bind_keeps_a_sane_id_and_replaces_a_bad_one() -> None:
    assert "abc-123" == bind_request_id("abc-123") == request_id_var.get()
    for bad in (None, "", "x" * 65, "bad\nid"):
        fresh = bind_request_id(bad)
        assert fresh != bad and len(fresh) == 16 and fresh == request_id_var.get()
