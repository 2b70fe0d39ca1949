"""The ChatService servicer: translates proto <-> domain for the authenticated caller.

Each method reads like a paragraph: who is calling (the Principal the auth interceptor
bound, ``current_principal``), what they asked for in domain terms, which use case
answers, and the reply. Decisions live in ``chat_service.usecases`` and
``chat_service.domain``; errors are domain errors the shared interceptor maps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpc import aio
from minitg.chat.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc, updates_pb2

from chat_service.adapters.log_reader import CHUNK
from chat_service.domain import rules
from chat_service.domain.model import SendItem, SendResult
from chat_service.usecases.chat import ChatUseCases
from chat_service.wire import body_from_proto, chat_to_proto, message_to_proto
from svckit.authn import Principal, current_principal
from svckit.errors import DomainError, InvalidField
from svckit.paging import clamp_page_size, decode_page_token, encode_page_token

DEFAULT_DIFFERENCE_LIMIT, MAX_DIFFERENCE_LIMIT = 1000, 10_000


def send_response(result: SendResult) -> chat_service_pb2.SendMessageResponse:
    return chat_service_pb2.SendMessageResponse(
        message_id=result.message_id,
        seq=result.seq,
        date_ms=result.date_ms,
        pts=result.pts,
        pts_count=result.pts_count,
    )


def send_item(
    request: chat_service_pb2.SendMessageRequest, prefix: str, max_text_chars: int
) -> SendItem:
    """A send request as a validated SendItem; field paths in errors start with ``prefix``."""
    client_msg_id = rules.validate_idempotency_id(
        request.client_msg_id, f"{prefix}client_msg_id", required=True
    )
    body = rules.validate_body(
        body_from_proto(request.body) if request.HasField("body") else None,
        f"{prefix}body",
        max_text_chars=max_text_chars,
    )
    if request.chat_id < 1:
        raise InvalidField(f"{prefix}chat_id", "chat_id must be at least 1")
    return SendItem(request.chat_id, client_msg_id, body)


def _list_cursor(token: str) -> tuple[int, int] | None:
    cursor = decode_page_token(token)
    if not cursor:
        return None
    activity, chat_id = cursor.get("a"), cursor.get("c")
    if not isinstance(activity, int) or not isinstance(chat_id, int):
        raise InvalidField("page_token", "page_token is not one this server issued")
    return activity, chat_id


def _history_anchor(request: chat_service_pb2.GetHistoryRequest) -> tuple[str, int] | None:
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


class ChatServicer(chat_service_pb2_grpc.ChatServiceServicer):
    """minitg.chat.v1.ChatService (every RPC AUTH_MODE_USER)."""

    def __init__(self, cases: ChatUseCases) -> None:
        self._cases = cases

    async def CreateChat(
        self,
        request: chat_service_pb2.CreateChatRequest,
        context: aio.ServicerContext[
            chat_service_pb2.CreateChatRequest, chat_service_pb2.CreateChatResponse
        ],
    ) -> chat_service_pb2.CreateChatResponse:
        caller = current_principal()
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

    async def GetChat(
        self,
        request: chat_service_pb2.GetChatRequest,
        context: aio.ServicerContext[
            chat_service_pb2.GetChatRequest, chat_service_pb2.GetChatResponse
        ],
    ) -> chat_service_pb2.GetChatResponse:
        caller = current_principal()
        view = await self._cases.get_chat(caller, request.chat_id)
        return chat_service_pb2.GetChatResponse(chat=chat_to_proto(view, for_user=caller.user_id))

    async def ListChats(
        self,
        request: chat_service_pb2.ListChatsRequest,
        context: aio.ServicerContext[
            chat_service_pb2.ListChatsRequest, chat_service_pb2.ListChatsResponse
        ],
    ) -> chat_service_pb2.ListChatsResponse:
        caller = current_principal()
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
        self,
        request: chat_service_pb2.InviteMembersRequest,
        context: aio.ServicerContext[
            chat_service_pb2.InviteMembersRequest, chat_service_pb2.InviteMembersResponse
        ],
    ) -> chat_service_pb2.InviteMembersResponse:
        caller = current_principal()
        invited = await self._cases.invite(caller, request.chat_id, list(request.user_ids))
        return chat_service_pb2.InviteMembersResponse(
            added_user_ids=invited.added_user_ids,
            member_count=invited.member_count,
            pts=invited.pts,
            pts_count=invited.pts_count,
        )

    async def LeaveChat(
        self,
        request: chat_service_pb2.LeaveChatRequest,
        context: aio.ServicerContext[
            chat_service_pb2.LeaveChatRequest, chat_service_pb2.LeaveChatResponse
        ],
    ) -> chat_service_pb2.LeaveChatResponse:
        caller = current_principal()
        pts = await self._cases.leave(caller, request.chat_id)
        return chat_service_pb2.LeaveChatResponse(pts=pts, pts_count=1)

    async def SendMessage(
        self,
        request: chat_service_pb2.SendMessageRequest,
        context: aio.ServicerContext[
            chat_service_pb2.SendMessageRequest, chat_service_pb2.SendMessageResponse
        ],
    ) -> chat_service_pb2.SendMessageResponse:
        caller = current_principal()
        item = send_item(request, "", self._cases.limits.max_text_chars)
        [outcome] = await self._cases.send(caller, [item])
        if isinstance(outcome, DomainError):
            raise outcome
        return send_response(outcome)

    async def ReadHistory(
        self,
        request: chat_service_pb2.ReadHistoryRequest,
        context: aio.ServicerContext[
            chat_service_pb2.ReadHistoryRequest, chat_service_pb2.ReadHistoryResponse
        ],
    ) -> chat_service_pb2.ReadHistoryResponse:
        caller = current_principal()
        result = await self._cases.read(caller, request.chat_id, request.max_seq)
        return chat_service_pb2.ReadHistoryResponse(
            pts=result.pts, pts_count=result.pts_count, unread_count=result.unread_count
        )

    async def GetState(
        self,
        request: chat_service_pb2.GetStateRequest,
        context: aio.ServicerContext[
            chat_service_pb2.GetStateRequest, chat_service_pb2.GetStateResponse
        ],
    ) -> chat_service_pb2.GetStateResponse:
        caller = current_principal()
        return chat_service_pb2.GetStateResponse(state=await self._state(caller))

    async def _state(self, caller: Principal) -> updates_pb2.State:
        state = await self._cases.state(caller)
        return updates_pb2.State(
            pts=state.pts, date_ms=self._cases.now_ms(), unread_chats_count=state.unread_chats_count
        )

    async def GetDifference(
        self,
        request: chat_service_pb2.GetDifferenceRequest,
        context: aio.ServicerContext[
            chat_service_pb2.GetDifferenceRequest, chat_service_pb2.GetDifferenceResponse
        ],
    ) -> AsyncIterator[chat_service_pb2.GetDifferenceResponse]:
        caller = current_principal()
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

    async def GetHistory(
        self,
        request: chat_service_pb2.GetHistoryRequest,
        context: aio.ServicerContext[
            chat_service_pb2.GetHistoryRequest, chat_service_pb2.GetHistoryResponse
        ],
    ) -> chat_service_pb2.GetHistoryResponse:
        caller = current_principal()
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

    async def EditMessage(
        self,
        request: chat_service_pb2.EditMessageRequest,
        context: aio.ServicerContext[
            chat_service_pb2.EditMessageRequest, chat_service_pb2.EditMessageResponse
        ],
    ) -> chat_service_pb2.EditMessageResponse:
        caller = current_principal()
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
        self,
        request: chat_service_pb2.DeleteMessagesRequest,
        context: aio.ServicerContext[
            chat_service_pb2.DeleteMessagesRequest, chat_service_pb2.DeleteMessagesResponse
        ],
    ) -> chat_service_pb2.DeleteMessagesResponse:
        caller = current_principal()
        deleted = await self._cases.delete(
            caller, request.chat_id, list(request.message_ids), request.for_everyone
        )
        return chat_service_pb2.DeleteMessagesResponse(pts=deleted.pts, pts_count=deleted.pts_count)
