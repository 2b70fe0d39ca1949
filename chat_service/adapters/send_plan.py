"""The arithmetic of a send batch: per chat, whose messages land where, and what each
member's unread count is after each of them (messages.py runs the SQL).

Within one chat of a batch the fresh messages take consecutive seqs in request order. A
member who sends in the batch has read the chat up to their own last message of it; every
other member's unread count grows by one per message. The NewMessage update a member gets
for message ``n`` carries their unread count right after ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from minitg.chat.v1 import chat_pb2, updates_pb2

from chat_service.adapters.batch_sql import SenderRead
from chat_service.domain.model import Message, Outgoing
from chat_service.wire import message_to_proto


@dataclass
class ChatBatch:
    """The fresh items of one chat within a batch, and what its lock and members returned."""

    chat_id: int
    indexes: list[int] = field(default_factory=list)  # batch item indexes, request order
    last_seq: int = 0
    date_ms: int = 0
    members: list[int] = field(default_factory=list)
    prior: dict[int, int] = field(default_factory=dict)  # member -> unread before the batch
    unread: dict[int, int] = field(default_factory=dict)  # member -> unread after the batch
    _own: dict[int, list[int]] | None = None

    @property
    def first_seq(self) -> int:
        return self.last_seq - len(self.indexes) + 1

    def own_positions(self, sends: Sequence[Outgoing]) -> dict[int, list[int]]:
        """Sender -> the positions (0-based, within this chat) of their messages."""
        if self._own is None:
            self._own = {}
            for position, index in enumerate(self.indexes):
                self._own.setdefault(sends[index].sender_id, []).append(position)
        return self._own


def sender_reads(live: Sequence[ChatBatch], sends: Sequence[Outgoing]) -> list[SenderRead]:
    """Each sender's read mark in ``live``'s chats: their watermark moves to their last
    message of the batch and their unread becomes the count of messages after it (every
    other member's unread grows by the chat's message count, ``prepare_send``)."""
    return [
        SenderRead(
            b.chat_id, user_id, len(b.indexes) - 1 - positions[-1], b.first_seq + positions[-1]
        )
        for b in live
        for user_id, positions in b.own_positions(sends).items()
    ]


def new_message_updates(
    batch: ChatBatch, sends: Sequence[Outgoing], message: Message
) -> tuple[updates_pb2.Update, dict[int, updates_pb2.Update]]:
    """The shared NewMessage (no client_msg_id, no unread) and the per-member patches:
    each other member's unread count right after this message, the sender's client_msg_id."""
    shared = updates_pb2.Update(
        new_message=updates_pb2.NewMessage(message=message_to_proto(message, for_user=0))
    )
    own = batch.own_positions(sends)
    position, k = message.seq - batch.first_seq, len(batch.indexes)
    patches: dict[int, updates_pb2.Update] = {}
    by_count: dict[int, updates_pb2.Update] = {}  # members with equal counts share a patch
    for user_id in batch.members:
        if user_id == message.sender_id:
            continue
        earlier = [p for p in own.get(user_id, ()) if p < position]
        if earlier:  # read up to their own message, then these arrived
            unread = position - earlier[-1]
        elif user_id in own:  # sends later in the batch: count up from before it
            unread = batch.prior[user_id] + position + 1
        else:
            unread = batch.unread[user_id] - (k - 1 - position)
        if unread:
            patch = by_count.get(unread)
            if patch is None:
                patch = by_count[unread] = updates_pb2.Update(
                    new_message=updates_pb2.NewMessage(unread_count=unread)
                )
            patches[user_id] = patch
    patches[message.sender_id] = updates_pb2.Update(
        new_message=updates_pb2.NewMessage(
            message=chat_pb2.Message(client_msg_id=message.client_msg_id)
        )
    )
    return shared, patches
