"""The OpenAPI document describes exactly the gateway's routes, with schemas that match the
JSON the handlers print (http_json.message_json)."""

from __future__ import annotations

from typing import Any, cast

import jsonschema
import pytest
from minitg.auth.v1 import auth_pb2, auth_service_pb2
from minitg.chat.v1 import chat_pb2, chat_service_pb2

from gateway.app import create_app
from gateway.deps import GatewayDeps
from gateway.http_json import message_json, parse_message
from gateway.openapi import OPERATIONS, build_document, routes_of
from gateway.ws_handler import WsRuntime
from svckit.errors import InvalidField


def _app_and_document() -> tuple[Any, dict[str, Any]]:
    # Building the route table touches no dependency, so placeholders do.
    app = create_app(cast(GatewayDeps, object()), cast(WsRuntime, object()))
    return app, build_document(app)


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    """The document's operations are exactly the router's routes (HEAD aside)."""
    app, document = _app_and_document()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert set(routes_of(app)) == documented
    assert set(OPERATIONS) == documented


def test_document_is_openapi_31_with_bearer_security() -> None:
    """The document says OpenAPI 3.1, and authenticated operations require the bearer JWT."""
    _, document = _app_and_document()
    assert "3.1.0" == document["openapi"]
    assert {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"} == (
        document["components"]["securitySchemes"]["bearer"]
    )
    assert [{"bearer": []}] == document["paths"]["/v1/chats"]["get"]["security"]
    assert [] == document["paths"]["/v1/auth/login"]["post"]["security"]


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    # The schema's "#/components/..." references resolve against the document itself.
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def _response_schema(document: dict[str, Any], path: str, method: str, status: str) -> Any:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


def test_printed_messages_match_their_response_schemas() -> None:
    """A fully populated and an empty answer of each kind validate against the document."""
    _, document = _app_and_document()
    message = chat_pb2.Message(id=2**53 - 1, chat_id=1, seq=1, sender_user_id=2, date_ms=3)
    message.body.encrypted.header = b"\x00\x01"
    chat = chat_pb2.Chat(id=7, kind=chat_pb2.CHAT_KIND_GROUP, title="t", last_message=message)
    chat.members.add(user_id=2, role=chat_pb2.MEMBER_ROLE_OWNER, joined_at_ms=1)
    cases = [
        ("/v1/chats/{chat_id}", "get", "200", chat_service_pb2.GetChatResponse(chat=chat)),
        ("/v1/chats", "get", "200", chat_service_pb2.ListChatsResponse(chats=[chat])),
        ("/v1/chats", "get", "200", chat_service_pb2.ListChatsResponse()),
        ("/v1/chats", "post", "201", chat_service_pb2.CreateChatResponse(chat=chat, pts=4)),
        (
            "/v1/users/me", "get", "200",
            auth_service_pb2.GetUserResponse(user=auth_pb2.User(id=1, display_name="a")),
        ),
    ]  # fmt: skip
    for path, method, status, reply in cases:
        validator = _validator(document, _response_schema(document, path, method, status))
        assert [] == [e.message for e in validator.iter_errors(message_json(reply))]


def test_schemas_carry_the_proto_comments() -> None:
    """Messages, fields and query parameters are described by their proto comments."""
    _, document = _app_and_document()
    chat = document["components"]["schemas"]["chat.v1.Chat"]
    assert chat["description"].startswith("A chat as one member (the caller) sees it.")
    assert "Whether the chat is direct or a group." == chat["properties"]["kind"]["description"]
    history = document["paths"]["/v1/chats/{chat_id}/messages"]["get"]["parameters"]
    before = next(p for p in history if p["name"] == "before_seq")
    assert before["description"].startswith("Return the newest messages with seq strictly below")
    leave = document["paths"]["/v1/chats/{chat_id}/leave"]["post"]["description"]
    assert leave.startswith("Calls ChatService.LeaveChat: ")


def test_answers_print_proto_names_defaults_and_int64_as_numbers() -> None:
    """message_json prints snake_case names, every field, enums by name, int64 as numbers."""
    printed = message_json(chat_pb2.Chat(id=2**53 - 1, kind=chat_pb2.CHAT_KIND_DIRECT))
    assert 2**53 - 1 == printed["id"]
    assert "CHAT_KIND_DIRECT" == printed["kind"]
    assert (0, [], "") == (printed["read_inbox_max_seq"], printed["members"], printed["title"])


def test_requests_take_both_names_and_int64_as_strings() -> None:
    """parse_message accepts proto and lowerCamelCase names and decimal-string int64s."""
    parsed = parse_message(
        {"kind": "CHAT_KIND_GROUP", "peerUserId": "12", "member_user_ids": [1, "2"]},
        chat_service_pb2.CreateChatRequest(),
    )
    assert (chat_pb2.CHAT_KIND_GROUP, 12, [1, 2]) == (
        parsed.kind,
        parsed.peer_user_id,
        list(parsed.member_user_ids),
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"peer_user_id": "1_000"}, "peer_user_id"),
        ({"peer_user_id": 1.0}, "peer_user_id"),
        ({"peer_user_id": True}, "peer_user_id"),
        ({"peer_user_id": str(2**63)}, "peer_user_id"),
        ({"member_user_ids": 5}, "member_user_ids"),
        ({"kind": "group"}, "kind"),
        ({"title": 3}, "title"),
        ({}, "kind"),
    ],
)
def test_bad_request_fields_name_the_field(body: dict[str, Any], field: str) -> None:
    """A wrong type, an out-of-range or malformed integer, an unknown enum name or a missing
    required field is INVALID_FIELD naming the field."""
    with pytest.raises(InvalidField) as caught:
        parse_message(
            {"kind": "CHAT_KIND_GROUP"} | body if field != "kind" else body,
            chat_service_pb2.CreateChatRequest(),
            required=("kind",),
        )
    assert {"field": field} == caught.value.metadata
