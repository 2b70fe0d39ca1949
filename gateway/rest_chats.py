"""REST endpoints for chats: create, list, get, invite, leave, and history pages."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from minitg.chat.v1 import chat_pb2, chat_service_pb2

from gateway.deps import DEPS
from gateway.http_json import (
    id_value,
    int_param,
    page_size_param,
    read_object,
    text_field,
)
from svckit.errors import InvalidField

_KINDS = {"direct": chat_pb2.CHAT_KIND_DIRECT, "group": chat_pb2.CHAT_KIND_GROUP}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_ROLE_NAMES = {
    chat_pb2.MEMBER_ROLE_OWNER: "owner",
    chat_pb2.MEMBER_ROLE_ADMIN: "admin",
    chat_pb2.MEMBER_ROLE_MEMBER: "member",
}


def message_json(message: chat_pb2.Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id,
        "chat_id": message.chat_id,
        "seq": message.seq,
        "sender_id": message.sender_user_id,
        "date_ms": message.date_ms,
    }
    if message.body.WhichOneof("content") == "encrypted":
        enc = message.body.encrypted
        body["encrypted"] = {
            "header": base64.b64encode(enc.header).decode(),
            "ciphertext": base64.b64encode(enc.ciphertext).decode(),
        }
    else:
        body["text"] = message.body.text
    if message.edited_at_ms:
        body["edited_at_ms"] = message.edited_at_ms
    if message.client_msg_id:
        body["client_msg_id"] = message.client_msg_id
    return body


def chat_json(chat: chat_pb2.Chat) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": chat.id,
        "kind": _KIND_NAMES.get(chat.kind, "unknown"),
        "title": chat.title,
        "member_count": chat.member_count,
        "last_seq": chat.last_seq,
        "unread_count": chat.unread_count,
        "read_inbox_max_seq": chat.read_inbox_max_seq,
        "read_outbox_max_seq": chat.read_outbox_max_seq,
        "created_at_ms": chat.created_at_ms,
    }
    if chat.members:
        body["members"] = [
            {"user_id": m.user_id, "role": _ROLE_NAMES.get(m.role, "member")} for m in chat.members
        ]
    if chat.HasField("last_message"):
        body["last_message"] = message_json(chat.last_message)
    return body


def _ids(body: dict[str, Any], name: str) -> list[int]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise InvalidField(name, f"{name} must be a list of user ids")
    return [id_value(v, name) for v in value]


async def create_chat(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    body = await read_object(request)
    kind = _KINDS.get(text_field(body, "kind"))
    if kind is None:
        raise InvalidField("kind", 'kind must be "direct" or "group"')
    peer = body.get("peer_id", 0)
    if type(peer) is not int or peer != 0:  # 0 (or absent): no peer, as for a group
        peer = id_value(peer, "peer_id")
    reply = await deps.clients.chat.CreateChat(
        chat_service_pb2.CreateChatRequest(
            kind=kind,
            peer_user_id=peer,
            title=text_field(body, "title", required=False),
            member_user_ids=_ids(body, "member_ids"),
            client_request_id=text_field(body, "client_request_id", required=False),
        ),
        metadata=principal.metadata(),
    )
    # The calling device gets no NewChat push: this answer carries its pts instead.
    body = chat_json(reply.chat) | {"pts": reply.pts, "pts_count": reply.pts_count}
    return web.json_response(body, status=201 if reply.created else 200)


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
    return web.json_response(
        {"chats": [chat_json(c) for c in reply.chats], "next_page_token": reply.next_page_token}
    )


async def get_chat(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.chat.GetChat(
        chat_service_pb2.GetChatRequest(chat_id=int_param(request, "chat_id")),
        metadata=principal.metadata(),
    )
    return web.json_response(chat_json(reply.chat))


async def invite(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    body = await read_object(request)
    reply = await deps.clients.chat.InviteMembers(
        chat_service_pb2.InviteMembersRequest(
            chat_id=int_param(request, "chat_id"), user_ids=_ids(body, "user_ids")
        ),
        metadata=principal.metadata(),
    )
    return web.json_response(
        {
            "added_user_ids": list(reply.added_user_ids),
            "member_count": reply.member_count,
            "pts": reply.pts,
            "pts_count": reply.pts_count,
        }
    )


async def leave(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    principal = await deps.authn.from_headers(request)
    reply = await deps.clients.chat.LeaveChat(
        chat_service_pb2.LeaveChatRequest(chat_id=int_param(request, "chat_id")),
        metadata=principal.metadata(),
    )
    return web.json_response({"pts": reply.pts, "pts_count": reply.pts_count})


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
    return web.json_response(
        {
            "messages": [message_json(m) for m in reply.messages],
            "next_page_token": reply.next_page_token,
            "prev_page_token": reply.prev_page_token,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chats", create_chat)
    app.router.add_get("/v1/chats", list_chats)
    app.router.add_get("/v1/chats/{chat_id}", get_chat)
    app.router.add_post("/v1/chats/{chat_id}/invite", invite)
    app.router.add_post("/v1/chats/{chat_id}/leave", leave)
    app.router.add_get("/v1/chats/{chat_id}/messages", history)
