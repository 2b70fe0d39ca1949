"""The ChatService servicer: authenticates the caller, translates proto <-> domain.

Each method reads like a paragraph: who is calling, what they asked for in domain terms,
which use case answers, and the reply. Decisions live in ``chat_service.service`` and
``chat_service.domain``; errors are domain errors the shared interceptor maps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from minitg.chat.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc, updates_pb2

from chat_service.adapters.log_reader import CHUNK
from chat_service.api.internal import InternalRpcs
from chat_service.domain import rules
from chat_service.domain.model import Outgoing, SendItem, SendResult
from chat_service.service import ChatUseCases
from chat_service.wire import body_from_proto, chat_to_proto, message_to_proto
from svckit.authn import Authenticator, Principal, require_service_caller
from svckit.errors import DomainError, InvalidField, Unavailable
from svckit.paging import clamp_page_size, decode_page_token, encode_page_token

MAX_BATCH_SENDS = 100
MAX_RELAYED_SENDS = 500
DEFAULT_DIFFERENCE_LIMIT, MAX_DIFFERENCE_LIMIT = 1000, 10_000


def _send_response(result: SendResult) -> chat_service_pb2.SendMessageResponse:
    return chat_service_pb2.SendMessageResponse(
        message_id=result.message_id,
        seq=result.seq,
        date_ms=result.date_ms,
        pts=result.pts,
        pts_count=result.pts_count,
    )


def _item_error(error: DomainError) -> chat_service_pb2.ItemError:
    return chat_service_pb2.ItemError(
        code=error.code.value[0],
        reason=error.reason,
        message=error.message,
        metadata=error.metadata,
    )


def _list_cursor(token: str) -> tuple[int, int] | None:
    cursor = decode_page_token(token)
    if not cursor:
        return None
    activity, chat_id = cursor.get("a"), cursor.get("c")
    if not isinstance(activity, int) or not isinstance(chat_id, int):
        raise InvalidField("page_token", "page_token is not one this server issued")
    return activity, chat_id


def _history_anchor(request: Any) -> tuple[str, int] | None:
    """The page's starting point: from the token when set, else from the anchor oneof."""
    if request.page_token:
        cursor = decode_page_token(request.page_token)
        for key, where in (("a", "after"), ("b", "before")):
            seq = cursor.get(key)
            if isinstance(seq, int) and cursor.get("c") == request.chat_id and seq >= 0:
                return where, seq
        raise InvalidField("page_token", "page_token is not one this server issued")
    which = request.WhichOneof("anchor")
    if which is None:
        return None
    seq = int(getattr(request, which))
    if seq < (0 if which == "after_seq" else 1):
        raise InvalidField(which, f"{which} is out of range")
    return which.removesuffix("_seq"), seq


class ChatServicer(InternalRpcs, chat_service_pb2_grpc.ChatServiceServicer):
    """minitg.chat.v1.ChatService."""

    def __init__(self, cases: ChatUseCases, authn: Authenticator, internal_token: str) -> None:
        self._cases, self._authn, self._internal_token = cases, authn, internal_token

    async def _caller(self, context: Any) -> Principal:
        try:
            return await self._authn.from_metadata(context.invocation_metadata())
        except grpc.aio.AioRpcError as exc:
            raise Unavailable("the auth service did not answer") from exc

    def _item(self, request: Any, prefix: str) -> SendItem:
        client_msg_id = rules.validate_idempotency_id(
            request.client_msg_id, f"{prefix}client_msg_id", required=True
        )
        body = rules.validate_body(
            body_from_proto(request.body) if request.HasField("body") else None,
            f"{prefix}body",
            max_text_chars=self._cases.limits.max_text_chars,
        )
        if request.chat_id < 1:
            raise InvalidField(f"{prefix}chat_id", "chat_id must be at least 1")
        return SendItem(request.chat_id, client_msg_id, body)

    async def CreateChat(self, request: Any, context: Any) -> chat_service_pb2.CreateChatResponse:
        caller = await self._caller(context)
        if request.kind == chat_pb2.CHAT_KIND_DIRECT:
            if request.title:
                raise InvalidField("title", "a direct chat has no title")
            if request.member_user_ids:
                raise InvalidField("member_user_ids", "a direct chat has no member list")
            view, outcome = await self._cases.create_direct(caller, request.peer_user_id)
        elif request.kind == chat_pb2.CHAT_KIND_GROUP:
            if request.peer_user_id:
                raise InvalidField("peer_user_id", "a group has no peer_user_id")
            view, outcome = await self._cases.create_group(
                caller, request.title, list(request.member_user_ids), request.client_request_id
            )
        else:
            raise InvalidField("kind", "kind must be CHAT_KIND_DIRECT or CHAT_KIND_GROUP")
        return chat_service_pb2.CreateChatResponse(
            chat=chat_to_proto(view, for_user=caller.user_id),
            created=outcome.created,
            pts=outcome.pts,
            pts_count=1 if outcome.pts else 0,
        )

    async def GetChat(self, request: Any, context: Any) -> chat_service_pb2.GetChatResponse:
        caller = await self._caller(context)
        view = await self._cases.get_chat(caller, request.chat_id)
        return chat_service_pb2.GetChatResponse(chat=chat_to_proto(view, for_user=caller.user_id))

    async def ListChats(self, request: Any, context: Any) -> chat_service_pb2.ListChatsResponse:
        caller = await self._caller(context)
        size = clamp_page_size(request.page_size, default=50, maximum=100)
        after = _list_cursor(request.page_token)
        page = await self._cases.list_chats(caller, after, size + 1)
        token = ""
        if len(page) > size:
            view, activity = page[size - 1]
            token = encode_page_token({"a": activity, "c": view.id})
        return chat_service_pb2.ListChatsResponse(
            chats=[chat_to_proto(v, for_user=caller.user_id) for v, _ in page[:size]],
            next_page_token=token,
        )

    async def InviteMembers(
        self, request: Any, context: Any
    ) -> chat_service_pb2.InviteMembersResponse:
        caller = await self._caller(context)
        invited = await self._cases.invite(caller, request.chat_id, list(request.user_ids))
        return chat_service_pb2.InviteMembersResponse(
            added_user_ids=invited.added_user_ids,
            member_count=invited.member_count,
            pts=invited.pts,
            pts_count=invited.pts_count,
        )

    async def LeaveChat(self, request: Any, context: Any) -> chat_service_pb2.LeaveChatResponse:
        caller = await self._caller(context)
        pts = await self._cases.leave(caller, request.chat_id)
        return chat_service_pb2.LeaveChatResponse(pts=pts, pts_count=1)

    async def SendMessage(self, request: Any, context: Any) -> chat_service_pb2.SendMessageResponse:
        caller = await self._caller(context)
        [outcome] = await self._cases.send(caller, [self._item(request, "")])
        if isinstance(outcome, DomainError):
            raise outcome
        return _send_response(outcome)

    async def SendMessages(
        self, request: Any, context: Any
    ) -> chat_service_pb2.SendMessagesResponse:
        caller = await self._caller(context)
        if not 1 <= len(request.items) <= MAX_BATCH_SENDS:
            raise InvalidField("items", f"items must hold 1 to {MAX_BATCH_SENDS} sends")
        results = await self._send_batch(
            [(caller.user_id, caller.session_id, item) for item in request.items], "items"
        )
        return chat_service_pb2.SendMessagesResponse(results=results)

    async def RelaySends(self, request: Any, context: Any) -> chat_service_pb2.RelaySendsResponse:
        require_service_caller(context.invocation_metadata(), self._internal_token)
        if not 1 <= len(request.items) <= MAX_RELAYED_SENDS:
            raise InvalidField("items", f"items must hold 1 to {MAX_RELAYED_SENDS} sends")
        results = await self._send_batch(
            [(r.user_id, r.session_id, r.send) for r in request.items], "items", relayed=True
        )
        return chat_service_pb2.RelaySendsResponse(results=results)

    async def _send_batch(
        self, items: list[tuple[int, str, Any]], field: str, *, relayed: bool = False
    ) -> list[chat_service_pb2.SendMessageResult]:
        """Validate each item (failures are per item), send the valid ones together."""
        results: list[chat_service_pb2.SendMessageResult] = []
        valid: list[tuple[int, Outgoing]] = []
        for index, (user_id, session_id, send) in enumerate(items):
            prefix = f"{field}[{index}]." + ("send." if relayed else "")
            try:
                if user_id < 1 or not session_id:
                    raise InvalidField(f"{field}[{index}]", "a sender needs user_id and session_id")
                valid.append((index, Outgoing(user_id, session_id, self._item(send, prefix))))
            except DomainError as error:
                results.append(chat_service_pb2.SendMessageResult(error=_item_error(error)))
                continue
            results.append(chat_service_pb2.SendMessageResult())
        outcomes = await self._cases.relay([send for _, send in valid]) if valid else []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results[index].error.CopyFrom(_item_error(outcome))
            else:
                results[index].response.CopyFrom(_send_response(outcome))
        return results

    async def ReadHistory(self, request: Any, context: Any) -> chat_service_pb2.ReadHistoryResponse:
        caller = await self._caller(context)
        result = await self._cases.read(caller, request.chat_id, request.max_seq)
        return chat_service_pb2.ReadHistoryResponse(
            pts=result.pts, pts_count=result.pts_count, unread_count=result.unread_count
        )

    async def GetState(self, request: Any, context: Any) -> chat_service_pb2.GetStateResponse:
        caller = await self._caller(context)
        return chat_service_pb2.GetStateResponse(state=await self._state(caller))

    async def _state(self, caller: Principal) -> updates_pb2.State:
        state = await self._cases.state(caller)
        return updates_pb2.State(
            pts=state.pts, date_ms=self._cases.now_ms(), unread_chats_count=state.unread_chats_count
        )

    async def GetDifference(
        self, request: Any, context: Any
    ) -> AsyncIterator[chat_service_pb2.GetDifferenceResponse]:
        caller = await self._caller(context)
        if request.pts < 0:
            raise InvalidField("pts", "pts must not be negative")
        limit = clamp_page_size(
            request.limit, default=DEFAULT_DIFFERENCE_LIMIT, maximum=MAX_DIFFERENCE_LIMIT
        ) if request.limit >= 0 else -1  # fmt: skip
        if limit < 0:
            raise InvalidField("limit", "limit must not be negative")
        state = await self._state(caller)
        done = chat_service_pb2.GetDifferenceResponse
        if request.pts > state.pts or (
            request.pts < state.pts
            and not await self._cases.log.continues_from(caller.user_id, request.pts)
        ):
            yield done(status=chat_service_pb2.DIFFERENCE_STATUS_TOO_LONG, state=state)
            return
        # Every logged update has pts_count 1, so this slice holds exactly ``limit`` updates
        # (or the rest of the log), streamed in chunks of at most ``limit`` too.
        until = min(state.pts, request.pts + limit)
        size = min(limit, CHUNK)
        async for chunk in self._cases.log.chunks(caller.user_id, request.pts, until, size):
            yield done(updates=[updates_pb2.Update.FromString(p) for p in chunk])
        if until < state.pts:
            yield done(
                status=chat_service_pb2.DIFFERENCE_STATUS_SLICE, state=state, intermediate_pts=until
            )
            return
        yield done(status=chat_service_pb2.DIFFERENCE_STATUS_COMPLETE, state=state)

    async def GetHistory(self, request: Any, context: Any) -> chat_service_pb2.GetHistoryResponse:
        caller = await self._caller(context)
        size = clamp_page_size(request.page_size, default=50, maximum=100)
        anchor = _history_anchor(request)
        page, more_older, more_newer = await self._cases.history(
            caller, request.chat_id, anchor, size
        )
        cid = request.chat_id
        return chat_service_pb2.GetHistoryResponse(
            messages=[message_to_proto(m, for_user=caller.user_id) for m in page],
            next_page_token=encode_page_token({"c": cid, "a": page[-1].seq}) if more_newer else "",
            prev_page_token=encode_page_token({"c": cid, "b": page[0].seq}) if more_older else "",
        )

    async def EditMessage(self, request: Any, context: Any) -> chat_service_pb2.EditMessageResponse:
        caller = await self._caller(context)
        body = rules.validate_body(
            body_from_proto(request.body) if request.HasField("body") else None,
            "body",
            max_text_chars=self._cases.limits.max_text_chars,
        )
        edited = await self._cases.edit(caller, request.chat_id, request.message_id, body)
        return chat_service_pb2.EditMessageResponse(
            message=message_to_proto(edited.message, for_user=caller.user_id),
            pts=edited.pts,
            pts_count=edited.pts_count,
        )

    async def DeleteMessages(
        self, request: Any, context: Any
    ) -> chat_service_pb2.DeleteMessagesResponse:
        caller = await self._caller(context)
        deleted = await self._cases.delete(
            caller, request.chat_id, list(request.message_ids), request.for_everyone
        )
        return chat_service_pb2.DeleteMessagesResponse(pts=deleted.pts, pts_count=deleted.pts_count)
