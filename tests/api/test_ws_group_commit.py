"""A gateway pod coalesces its sockets' concurrent sends into RelaySends batches (group commit)
and every device still sees its own sends committed in order and every peer message once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from tests.api.ws_support import accounts, clients
from tests.harness import running_system
from tgclient import MinitgClient, RestClient

ENV = {"MINITG_SEND_BATCHES_IN_FLIGHT": "1", "MINITG_RATE_WS_UPGRADE": "1000/60"}
SENDERS, PER_SENDER = 8, 5


def batches(kind: str = "sends") -> tuple[float, float]:
    """How many ``kind`` batches this process made, and how many items they carried."""
    labels = {"batch": kind}
    count = REGISTRY.get_sample_value("minitg_coalesced_batch_items_count", labels) or 0.0
    total = REGISTRY.get_sample_value("minitg_coalesced_batch_items_sum", labels) or 0.0
    return count, total


async def from_peer(device: MinitgClient, peer_id: int) -> list[str]:
    """The texts of the first PER_SENDER messages ``device`` applied from ``peer_id``."""
    texts: list[str] = []
    while len(texts) < PER_SENDER:
        message = (await device.next_update()).new_message.message
        if message.sender_user_id == peer_id:
            texts.append(message.body.text)
    return texts


async def test_concurrent_sends_share_batches_and_keep_each_devices_order(
    shape: str, tmp_path: Path
) -> None:
    async with running_system(shape, tmp_path, env=ENV) as system:
        async with RestClient(system.http_url) as rest:
            users = await accounts(rest, *(f"u{i}" for i in range(SENDERS)))
            chats = [
                await rest.direct_chat(users[i].access_token, users[i + 1].user_id)
                for i in range(0, SENDERS, 2)
            ]
        hellos = batches("states")
        async with clients(system, *users) as devices:
            assert batches("states")[1] - hellos[1] == SENDERS, "each Hello's state was batched"
            before = batches()

            async def burst(n: int) -> list[Any]:
                chat_id = chats[n // 2]["id"]
                texts = [f"{n}:{k}" for k in range(PER_SENDER)]
                return list(
                    await asyncio.gather(*(devices[n].send_text(chat_id, t) for t in texts))
                )

            replies = await asyncio.gather(*(burst(n) for n in range(SENDERS)))
            after = batches()
            seen = [await from_peer(devices[n ^ 1], users[n].user_id) for n in range(SENDERS)]
    sends = SENDERS * PER_SENDER
    assert sends == after[1] - before[1], "every send went through a batch"
    assert after[0] - before[0] < sends, "and some batches carried several sends"
    for n in range(SENDERS):
        seqs = [r.seq for r in replies[n]]
        assert seqs == sorted(seqs), "one device's sends commit in the order it sent them"
        assert [f"{n}:{k}" for k in range(PER_SENDER)] == seen[n], "the peer got each, in order"
