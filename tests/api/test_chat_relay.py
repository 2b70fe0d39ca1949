"""ChatInternalService RelaySends (a gateway pod's coalesced sends, many senders in one call
and one transaction) and GetStates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from minitg.chat.v1 import (
    chat_internal_service_pb2,
    chat_internal_service_pb2_grpc,
    chat_pb2,
    chat_service_pb2,
    chat_service_pb2_grpc,
)

from svckit.errors import details_from_rpc_error
from tests.harness import SHAPES, System, running_system
from tests.harness import TestUser as User

pytestmark = pytest.mark.asyncio(loop_scope="module")

CS = chat_service_pb2
CI = chat_internal_service_pb2


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SHAPES)
async def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    tmp: Path = tmp_path_factory.mktemp(f"relay-{request.param}")
    async with running_system(request.param, tmp, roles=("auth", "chat")) as running:
        yield running


def stub(system: System) -> chat_service_pb2_grpc.ChatServiceAsyncStub:
    return chat_service_pb2_grpc.ChatServiceStub(system.channel("chat"))


def internal(system: System) -> chat_internal_service_pb2_grpc.ChatInternalServiceAsyncStub:
    return chat_internal_service_pb2_grpc.ChatInternalServiceStub(system.channel("chat"))


def service(system: System) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Service {system.cfg.messaging.internal_token}"),)


def relayed(user: User, chat_id: int, cmid: str, text: str = "hi") -> CI.RelayedSend:
    send = CS.SendMessageRequest(
        chat_id=chat_id, client_msg_id=cmid, body=chat_pb2.MessageBody(text=text)
    )
    return CI.RelayedSend(user_id=user.id, session_id=user.session_id, send=send)


async def users_and_chat(system: System) -> tuple[User, User, User, int]:
    a, b, outsider = await asyncio.gather(*(system.register(f"r{i}") for i in range(3)))
    reply = await stub(system).CreateChat(
        CS.CreateChatRequest(kind=chat_pb2.CHAT_KIND_DIRECT, peer_user_id=b.id),
        metadata=a.metadata(),
    )
    return a, b, outsider, reply.chat.id


async def reason_of(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return details_from_rpc_error(info.value).reason


async def test_relay_sends_for_several_users_with_errors_per_item(system: System) -> None:
    """Two members and an outsider in one call: the members' sends commit in order as
    their own, the outsider and an invalid item fail alone."""
    a, b, outsider, chat_id = await users_and_chat(system)
    items = [
        relayed(a, chat_id, "m1"),
        relayed(outsider, chat_id, "x1"),
        relayed(b, chat_id, "m2"),
        relayed(a, chat_id, "m3", text=""),
        CI.RelayedSend(user_id=a.id, session_id="", send=relayed(a, chat_id, "m4").send),
        relayed(a, chat_id, "m5"),
    ]
    reply = await internal(system).RelaySends(
        CI.RelaySendsRequest(items=items), metadata=service(system)
    )
    kinds = [r.WhichOneof("outcome") for r in reply.results]
    assert ["response", "error", "response", "error", "error", "response"] == kinds
    errors = [r.error for r in reply.results if r.WhichOneof("outcome") == "error"]
    assert ["CHAT_NOT_FOUND", "INVALID_FIELD", "INVALID_FIELD"] == [e.reason for e in errors]
    assert {"field": "items[3].send.body.text"} == dict(errors[1].metadata)
    assert [1, 2, 3] == [reply.results[i].response.seq for i in (0, 2, 5)]
    history = await stub(system).GetHistory(
        CS.GetHistoryRequest(chat_id=chat_id), metadata=b.metadata()
    )
    assert [(1, a.id), (2, b.id), (3, a.id)] == [
        (m.seq, m.sender_user_id) for m in history.messages
    ]


async def test_relay_retry_answers_from_the_stored_results(system: System) -> None:
    """The same batch again (a gateway retry) creates nothing and returns the same results."""
    a, b, _, chat_id = await users_and_chat(system)
    request = CI.RelaySendsRequest(items=[relayed(a, chat_id, "k1"), relayed(b, chat_id, "k1")])
    first = await internal(system).RelaySends(request, metadata=service(system))
    again = await internal(system).RelaySends(request, metadata=service(system))
    assert first == again
    assert [1, 2] == [r.response.seq for r in first.results]


async def test_relay_needs_the_service_credential_and_a_sane_batch(system: System) -> None:
    """A user's token is PERMISSION_DENIED, no credential UNAUTHENTICATED, and an empty or
    oversized batch INVALID_FIELD."""
    a, _, _, chat_id = await users_and_chat(system)
    one = CI.RelaySendsRequest(items=[relayed(a, chat_id, "c1")])
    relay = internal(system).RelaySends
    assert "PERMISSION_DENIED" == await reason_of(relay(one, metadata=a.metadata()))
    assert "TOKEN_INVALID" == await reason_of(relay(one))
    empty = CI.RelaySendsRequest()
    assert "INVALID_FIELD" == await reason_of(relay(empty, metadata=service(system)))
    huge = CI.RelaySendsRequest(items=[relayed(a, chat_id, f"h{i}") for i in range(501)])
    assert "INVALID_FIELD" == await reason_of(relay(huge, metadata=service(system)))


async def test_get_states_answers_like_get_state_for_many_users(system: System) -> None:
    """GetStates gives each user what their own GetState gives, in request order."""
    a, b, outsider, chat_id = await users_and_chat(system)
    await internal(system).RelaySends(
        CI.RelaySendsRequest(items=[relayed(a, chat_id, "s1"), relayed(a, chat_id, "s2")]),
        metadata=service(system),
    )
    own = [
        (await stub(system).GetState(CS.GetStateRequest(), metadata=u.metadata())).state
        for u in (b, a, outsider)
    ]
    reply = await internal(system).GetStates(
        CI.GetStatesRequest(user_ids=[b.id, a.id, outsider.id, b.id]), metadata=service(system)
    )
    got = [(s.pts, s.unread_chats_count) for s in reply.states]
    assert [(s.pts, s.unread_chats_count) for s in own] + [got[0]] == got
    assert (3, 1) == got[0]  # NewChat + two messages, one chat with unread messages


async def test_get_states_needs_the_service_credential_and_sane_ids(system: System) -> None:
    a, _, _, _ = await users_and_chat(system)
    states = internal(system).GetStates
    one = CI.GetStatesRequest(user_ids=[a.id])
    assert "PERMISSION_DENIED" == await reason_of(states(one, metadata=a.metadata()))
    for bad in ([], [0], list(range(1, 1002))):
        request = CI.GetStatesRequest(user_ids=bad)
        assert "INVALID_FIELD" == await reason_of(states(request, metadata=service(system)))
