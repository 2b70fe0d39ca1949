"""The served OpenAPI document is true: schemathesis runs every operation against a running
system (both shapes), with valid and invalid inputs, and every answer is documented and matches
its schema, and none is a 5xx.

Bounded for ``make test`` on a small machine: few examples per operation, derandomized
(the same inputs every run, so a failure reproduces), no example database.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from minitg.chat.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
from schemathesis import GenerationMode
from schemathesis.checks import (
    FailureGroup,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import SHAPES, System, running_system

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Per operation and mode; SCHEMATHESIS_EXAMPLES=200 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
# Not REST: a WebSocket upgrade (docs/PROTOCOL.md section 3 and the ws tests cover it).
SKIPPED = {("GET", "/v1/ws")}
# Run last, each with a session of its own: they end the session they are called with.
SESSION_ENDING = {("POST", "/v1/auth/logout")}
PASSWORD = "correct horse battery"


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    token: str,
    failures: list[str],
    path_parameters: dict[str, int] | None = None,
) -> None:
    """Run one operation's examples in ``mode`` (with these path parameters fixed, when
    given); append a line per failing example."""
    session = requests.Session()
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @hypothesis.given(case=strategy)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )
        except (FailureGroup, AssertionError) as exc:
            failures.append(f"{case.method} {case.formatted_path} ({mode.value}): {exc}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # An operation without parameters or body has no invalid input to make.
        if mode != GenerationMode.NEGATIVE:
            raise


def _run_order(operation: Any) -> tuple[bool, bool]:
    method = operation.method.upper()
    return (method, operation.path) in SESSION_ENDING, method != "GET"


async def _login(http: aiohttp.ClientSession, base_url: str, email: str) -> str:
    async with http.post(
        f"{base_url}/v1/auth/login", json={"email": email, "password": PASSWORD}
    ) as resp:
        assert 200 == resp.status, await resp.text()
        token: str = (await resp.json())["access_token"]
        return token


@pytest.mark.parametrize("shape", SHAPES)
async def _real_data(system: System, token: str) -> dict[str, int]:
    """A group with a second member and a message in it, so GET operations also meet full
    answers (members, last_message, history): path parameters naming them."""
    bob = await system.register("bob")
    md = (("authorization", f"Bearer {token}"),)
    chat = chat_service_pb2_grpc.ChatServiceStub(system.channel("chat"))
    created = await chat.CreateChat(
        chat_service_pb2.CreateChatRequest(
            kind=chat_pb2.CHAT_KIND_GROUP, title="fuzz", member_user_ids=[bob.id]
        ),
        metadata=md,
    )
    for n in range(3):
        await chat.SendMessage(
            chat_service_pb2.SendMessageRequest(
                chat_id=created.chat.id,
                client_msg_id=f"fuzz-{n}",
                body=chat_pb2.MessageBody(text=f"hello {n}"),
            ),
            metadata=md,
        )
    return {"chat_id": created.chat.id, "user_id": bob.id}


async def test_every_operation_answers_as_documented(tmp_path: Path, shape: str) -> None:
    """Every documented operation, fed valid and invalid input, answers a documented status
    with a body matching its schema, never a 5xx."""
    async with (
        running_system(shape, tmp_path) as system,
        aiohttp.ClientSession() as http,
    ):
        base_url = system.http_url
        email = "fuzz@example.org"
        async with http.post(
            f"{base_url}/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": "fuzz"},
        ) as resp:
            assert 201 == resp.status, await resp.text()
            token = (await resp.json())["access_token"]
        real = await _real_data(system, token)
        async with http.get(f"{base_url}/v1/openapi.json") as resp:
            document = await resp.json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert sorted(
            (method.upper(), path) for path, item in document["paths"].items() for method in item
        ) == sorted((op.method.upper(), op.path) for op in operations)

        failures: list[str] = []
        # Reads first (they see the real chat before a random leave may take the user out
        # of it), session-ending calls last.
        ordered = sorted(operations, key=_run_order)
        for operation in ordered:
            key = (operation.method.upper(), operation.path)
            if key in SKIPPED:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if key in SESSION_ENDING:
                    token = await _login(http, base_url, email)
                await asyncio.to_thread(_fuzz_operation, operation, mode, base_url, token, failures)
            names = {p.name for p in operation.path_parameters}
            if operation.method.upper() == "GET" and names and names <= set(real):
                fixed = {name: real[name] for name in names}
                await asyncio.to_thread(
                    _fuzz_operation, operation, GenerationMode.POSITIVE, base_url, token,
                    failures, fixed,
                )  # fmt: skip
        assert [] == failures


@pytest.mark.parametrize("path", ["/docs", "/docs/docs.js", "/docs/docs.css"])
async def test_docs_page_is_served_with_its_own_csp(tmp_path: Path, path: str) -> None:
    """/docs and its files are served from the package under a CSP that admits only them."""
    async with (
        running_system("embedded", tmp_path) as system,
        aiohttp.ClientSession() as http,
        http.get(system.http_url + path) as resp,
    ):
        assert 200 == resp.status
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert (await resp.read()).strip()


async def test_unknown_docs_file_is_404(tmp_path: Path) -> None:
    """A /docs/ name that is not one of the page's files is 404 NOT_FOUND."""
    async with (
        running_system("embedded", tmp_path) as system,
        aiohttp.ClientSession() as http,
        http.get(system.http_url + "/docs/..%2Fopenapi.py") as resp,
    ):
        assert (404, "NOT_FOUND") == (resp.status, (await resp.json())["error"]["code"])
