"""Fuzzing the edge: random WebSocket frames and random REST requests never break the server.

One system per shape (embedded, distributed) serves the module. Hypothesis draws (a)
arbitrary bytes and (b) structurally valid ClientFrames with random field values (built
from the generated message descriptors, so new frame kinds are fuzzed without editing this
file), sent on an authenticated socket, and (c) requests to every REST route of the
gateway's router with random or mutated bodies, path segments and queries. Every answer
must be documented: an Error frame or a documented close code on the socket, a status
below 500 with the JSON error shape over HTTP; no ERROR record may reach the log, and a
control client must still exchange a message afterwards. Derandomized with a bounded
example count, so it is a stable, quick part of the suite (``FUZZ_EXAMPLES`` raises the
count for a longer hunt).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message as pb_message
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from minitg.gateway.v1 import frames_pb2

from tests.api.ws_support import clients
from tests.harness import SHAPES, System, running_system
from tgclient import Account, RestClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Close codes a hostile frame may earn (docs/PROTOCOL.md); 1011 (INTERNAL) is a failure.
ALLOWED_CLOSE_CODES = {1003, 1007, 1008, 1009, 4008}

_TEXT = st.text(max_size=40)
_INTS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]),
)


class ErrorRecords(logging.Handler):
    """Collects every ERROR (and worse) record any logger emits while the module runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in self.records]
        self.records.clear()
        return found


@dataclass
class Rig:
    system: System
    ann: Account
    bob: Account
    chat_id: int
    errors: ErrorRecords
    http: aiohttp.ClientSession
    routes: list[tuple[str, str]]

    @property
    def ws_url(self) -> str:
        return self.system.http_url.replace("http://", "ws://") + "/v1/ws"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def rig(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    """One system per shape with two users in a direct chat, and a log watcher."""
    generous = {
        "MINITG_SESSION_CHECK_TTL_SECONDS": "0",
        "MINITG_RATE_LOGIN": "100000/60",
        "MINITG_RATE_LOGIN_PER_IP": "100000/60",
        "MINITG_RATE_REGISTER_PER_IP": "100000/60",
        "MINITG_RATE_REFRESH_PER_IP": "100000/60",
        "MINITG_RATE_USER_LOOKUP": "100000/60",
        "MINITG_RATE_WS_UPGRADE": "100000/60",
    }
    errors = ErrorRecords()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        async with (
            running_system(request.param, tmp_path_factory.mktemp("fuzz"), env=generous) as system,
            aiohttp.ClientSession() as http,
            RestClient(system.http_url) as rest,
        ):
            ann = await rest.register(f"ann-{secrets.token_hex(3)}@example.org", "password123", "a")
            bob = await rest.register(f"bob-{secrets.token_hex(3)}@example.org", "password123", "b")
            chat = await rest.direct_chat(ann.access_token, bob.user_id)
            app = system.roles["gateway"]._runner.app  # type: ignore[attr-defined]
            routes = sorted(
                {
                    (r.method, r.resource.canonical)
                    for r in app.router.routes()
                    if r.resource is not None and r.method in ("GET", "POST", "DELETE")
                }
            )
            yield Rig(system, ann, bob, int(chat["id"]), errors, http, routes)
    finally:
        root.removeHandler(errors)


async def _control_round_trip(rig: Rig) -> None:
    """The control clients still exchange a message, and nothing was logged as an error."""
    async with clients(rig.system, rig.ann, rig.bob) as (a, b):
        ack = await a.send_text(rig.chat_id, f"still here {secrets.token_hex(2)}")
        update = await b.next_update()
        assert ack.message_id == update.new_message.message.id
    assert [] == rig.errors.take()


# --- (a) and (b): WebSocket frames ---------------------------------------------------------


def _scalar(field: pb_descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return _INTS
    if kind in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return st.integers(min_value=-(2**31), max_value=2**31 - 1)
    if kind in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return st.integers(min_value=0, max_value=2**64 - 1)
    if kind in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return st.integers(min_value=0, max_value=2**32 - 1)
    if kind == field.TYPE_BOOL:
        return st.booleans()
    if kind == field.TYPE_STRING:
        return st.one_of(_TEXT, st.text(min_size=300, max_size=5000))
    if kind == field.TYPE_BYTES:
        return st.binary(max_size=200)
    if kind == field.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 50))
    return st.floats(allow_nan=True)


@st.composite
def _message(
    draw: st.DrawFn, descriptor: pb_descriptor.Descriptor, depth: int = 0
) -> pb_message.Message:
    """A message of ``descriptor`` with a random subset of its fields set to random values."""
    message = message_factory.GetMessageClass(descriptor)()
    oneof_choice = {
        oneof.name: draw(st.sampled_from([None, *oneof.fields])) for oneof in descriptor.oneofs
    }
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof_choice[oneof.name] is not field:
            continue
        if oneof is None and not draw(st.booleans()):
            continue
        _set_field(draw, message, field, depth)
    return message


def _set_field(
    draw: st.DrawFn, message: pb_message.Message, field: pb_descriptor.FieldDescriptor, depth: int
) -> None:
    sub = field.message_type  # None for a scalar field
    if sub is not None and (depth >= 3 or sub.GetOptions().map_entry):
        return  # deep enough; and no client frame holds a map today
    if field.is_repeated:
        target = getattr(message, field.name)
        for _ in range(draw(st.integers(0, 4))):
            if sub is not None:
                target.add().CopyFrom(draw(_message(sub, depth + 1)))
            else:
                target.append(draw(_scalar(field)))
    elif sub is not None:
        getattr(message, field.name).CopyFrom(draw(_message(sub, depth + 1)))
    else:
        setattr(message, field.name, draw(_scalar(field)))


def _client_frames() -> st.SearchStrategy[bytes]:
    """Valid ClientFrames: any payload kind, random contents, random request ids."""
    return _message(frames_pb2.ClientFrame.DESCRIPTOR).map(lambda m: m.SerializeToString())


def _unused_request_id(frames: list[bytes]) -> int:
    """A request id none of the fuzzed frames uses (a duplicate id is refused)."""
    used = set()
    for frame in frames:
        try:
            used.add(frames_pb2.ClientFrame.FromString(frame).request_id)
        except pb_message.DecodeError:
            continue
    return next(i for i in range(2**64 - 1, 0, -1) if i not in used)


async def _probe(rig: Rig, frames: list[bytes]) -> None:
    """Send ``frames`` then a Ping; every answer is a ServerFrame until the Pong, or the
    socket closes with a documented code."""
    headers = {"Authorization": f"Bearer {rig.ann.access_token}"}
    async with rig.http.ws_connect(rig.ws_url, headers=headers, max_msg_size=0) as ws:
        for frame in frames:
            await ws.send_bytes(frame)
        probe_id = _unused_request_id(frames)
        probe = frames_pb2.ClientFrame(request_id=probe_id, ping=frames_pb2.Ping())
        await ws.send_bytes(probe.SerializeToString())
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.BINARY:
                reply = frames_pb2.ServerFrame.FromString(msg.data)
                kind = reply.WhichOneof("payload")
                if kind == "error":
                    assert "INTERNAL" != reply.error.reason, reply
                if kind == "pong" and reply.pong.request_id == probe_id:
                    return
                continue
            if msg.type == aiohttp.WSMsgType.CLOSE:
                assert int(msg.data) in ALLOWED_CLOSE_CODES, (msg.data, msg.extra)
                return
            raise AssertionError(f"unexpected {msg.type} before the probe's Pong")


@FUZZ_SETTINGS
@given(frames=st.lists(st.binary(max_size=300), min_size=1, max_size=3))
async def test_arbitrary_bytes_on_the_websocket(rig: Rig, frames: list[bytes]) -> None:
    """Arbitrary binary frames earn Error frames or a documented close code, never 1011."""
    await _probe(rig, frames)


@FUZZ_SETTINGS
@given(frames=st.lists(_client_frames(), min_size=1, max_size=4))
async def test_random_client_frames(rig: Rig, frames: list[bytes]) -> None:
    """Structurally valid ClientFrames with random fields get Results or Error frames,
    never INTERNAL, and the socket keeps serving (the probe's Pong arrives)."""
    await _probe(rig, frames)


async def test_websocket_fuzz_left_the_server_healthy(rig: Rig) -> None:
    """After the WebSocket fuzz the control clients still chat; nothing was logged."""
    await _control_round_trip(rig)


# --- (c): REST ---------------------------------------------------------------------------

_HOSTILE_NUMBERS = st.sampled_from(
    [2**63, -(2**63) - 1, 2**64, 10**22, 1e22, -0.0, 0.5, 1e308, 2**31, -(2**31) - 1]
)
_JSON = st.recursive(
    st.none() | st.booleans() | _INTS | _HOSTILE_NUMBERS | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_VALID_BODIES: dict[str, dict[str, Any]] = {
    "/v1/auth/register": {
        "email": "fuzz@example.org",
        "password": "correct horse",
        "display_name": "F",
        "device_name": "d",
    },
    "/v1/auth/login": {"email": "fuzz@example.org", "password": "correct horse"},
    "/v1/auth/refresh": {"refresh_token": "x"},
    "/v1/auth/logout": {},
    "/v1/chats": {
        "kind": "CHAT_KIND_GROUP",
        "title": "t",
        "member_user_ids": [1],
        "peer_user_id": 1,
    },
    "/v1/chats/{chat_id}/invite": {"user_ids": [1]},
}
_SEGMENT = st.one_of(
    _INTS.map(str),
    _HOSTILE_NUMBERS.map(str),
    st.sampled_from(["0", "-1", "1e22", "99999999999999999999", "%00", "%ED%A0%80", "abc", ""]),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), max_size=12),
)


_RAW_BODIES = st.one_of(
    st.integers(1, 6000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 6000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode()),
    st.sampled_from([b'{"email": "\\ud800@x.org"}', b'{"title": NaN}', b"\xff\xfe", b"{"]),
    st.binary(max_size=100),
)


@st.composite
def _body(draw: st.DrawFn, template: str) -> Any:
    """Raw bytes (deep nesting, broken text), a random JSON value, or a valid body of the
    route with one field replaced by a random value."""
    choice = draw(st.sampled_from(["raw", "json", "mutated"]))
    valid = _VALID_BODIES.get(template)
    if choice == "raw":
        return draw(_RAW_BODIES)
    if choice == "json" or valid is None:
        return draw(_JSON)
    body = dict(valid)
    body[draw(st.sampled_from(sorted(body) or ["x"]))] = draw(_JSON)
    return body


@st.composite
def _requests(draw: st.DrawFn, routes: list[tuple[str, str]]) -> tuple[str, str, Any, bool]:
    method, template = draw(st.sampled_from(routes))
    path = re.sub(r"\{[^}]+\}", lambda _: draw(_SEGMENT) or "x", template)
    query = draw(st.dictionaries(st.sampled_from(_QUERY_NAMES), _SEGMENT, max_size=3))
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return method, path, draw(_body(template)), draw(st.booleans())


_QUERY_NAMES = ["page_size", "page_token", "before_seq", "after_seq", "around_seq", "email"]


@settings(FUZZ_SETTINGS, max_examples=EXAMPLES * 3)  # many routes: more examples
@given(data=st.data())
async def test_random_rest_requests(rig: Rig, data: st.DataObject) -> None:
    """Every route, with random or mutated bodies, path segments and queries: a status
    below 500 and, for errors, the documented JSON error shape."""
    routes = [(m, t) for m, t in rig.routes if t != "/v1/ws"]
    method, path, body, authenticated = data.draw(_requests(routes))
    # A fresh session per example: a fuzzed logout or revoke must not starve later ones.
    headers = {}
    if authenticated:
        headers["Authorization"] = f"Bearer {await _fresh_token(rig)}"
    payload = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with rig.http.request(
        method, rig.system.http_url + path, headers=headers, **payload
    ) as resp:
        raw = await resp.read()
        assert resp.status < 500, (method, path, body, resp.status, raw[:300])
        if resp.status >= 400:
            error = (await resp.json(content_type=None))["error"]
            assert {"code", "message"} <= set(error), raw[:300]
            assert re.fullmatch(r"[A-Z][A-Z_]*", error["code"]), error


async def _fresh_token(rig: Rig) -> str:
    async with rig.http.post(
        rig.system.http_url + "/v1/auth/login",
        json={"email": rig.bob.email, "password": "password123"},
    ) as resp:
        assert 200 == resp.status
        return str((await resp.json())["access_token"])


async def test_rest_fuzz_left_the_server_healthy(rig: Rig) -> None:
    """After the REST fuzz the control clients still chat; nothing was logged."""
    assert ("GET", "/v1/chats") in rig.routes  # the router was read, not a stale list
    await _control_round_trip(rig)
