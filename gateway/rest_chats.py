"""REST endpoints for chats: create, list, get, invite, leave, and history pages.

Request bodies and answers are the ChatService request and response messages' JSON
(``http_json.parse_message`` / ``message_response``); path and query parameters fill the
request message's fields of the same name.
"""

from __future__ import annotations

from aiohttp import web
from minitg.chat.v1 import chat_service_pb2

from gateway.deps import DEPS
from gateway.http_json import (
    int_param,
    message_response,
    page_size_param,
    parse_message,
    read_object,
)


async def create_chat(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    body = await read_object(request)
    reply = await deps.clients.chat.CreateChat(
        parse_message(body, chat_service_pb2.CreateChatRequest(), required=("kind",)),
        metadata=principal.metadata(),
    )
    # The calling device gets no NewChat push: this answer carries its pts instead.
    return message_response(reply, status=201 if reply.created else 200)


async def list_chats(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.chat.ListChats(
        chat_service_pb2.ListChatsRequest(
            page_size=page_size_param(request),
            page_token=request.query.get("page_token", ""),
        ),
        metadata=principal.metadata(),
    )
    return message_response(reply)


async def get_chat(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.chat.GetChat(
        chat_service_pb2.GetChatRequest(chat_id=int_param(request, "chat_id")),
        metadata=principal.metadata(),
    )
    return message_response(reply)


async def invite(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    body = await read_object(request)
    req = parse_message(body, chat_service_pb2.InviteMembersRequest(), required=("user_ids",))
    req.chat_id = int_param(request, "chat_id")
    reply = await deps.clients.chat.InviteMembers(
        req,
        metadata=principal.metadata(),
    )
    return message_response(reply)


async def leave(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.chat.LeaveChat(
        chat_service_pb2.LeaveChatRequest(chat_id=int_param(request, "chat_id")),
        metadata=principal.metadata(),
    )
    return message_response(reply)


async def history(request: web.Request) -> web.Response:
    """A page of messages: ``before_seq`` / ``after_seq`` / ``around_seq`` or a page token."""
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    req = chat_service_pb2.GetHistoryRequest(
        chat_id=int_param(request, "chat_id"),
        page_size=page_size_param(request),
        page_token=request.query.get("page_token", ""),
    )
    for anchor in ("before_seq", "after_seq", "around_seq"):
        if anchor in request.query:
            setattr(req, anchor, int_param(request, anchor))
    reply = await deps.clients.chat.GetHistory(req, metadata=principal.metadata())
    return message_response(reply)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chats", create_chat)
    app.router.add_get("/v1/chats", list_chats)
    app.router.add_get("/v1/chats/{chat_id}", get_chat)
    app.router.add_post("/v1/chats/{chat_id}/invite", invite)
    app.router.add_post("/v1/chats/{chat_id}/leave", leave)
    app.router.add_get("/v1/chats/{chat_id}/messages", history)
