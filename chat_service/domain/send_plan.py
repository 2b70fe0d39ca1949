"""The decisions of a send batch, as pure functions of what the transaction read: which
items repeat a stored message, which chat each fresh item lands in and at which seq, each
member's unread count after each message, and the NewMessage update every member gets
(``chat_service/adapters/messages.py`` reads and writes the rows around them).

Within one chat of a batch the fresh messages take consecutive seqs in request order. A
member who sends in the batch has read the chat up to their own last message of it; every
other member's unread count grows by one per message. The NewMessage update a member gets
for message ``n`` carries their unread count right after ``n``.

The send transaction is the hottest code in the system: these functions are called once
per batch or once per message, never per member per message except in the patch loop,
which shares one patch between members with equal counts (load/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from minitg.chat.v1 import chat_pb2, updates_pb2

from chat_service.domain.errors import ChatNotFound, ClientMsgIdReused
from chat_service.domain.model import Body, Message, Outgoing, SendResult
from chat_service.wire import message_to_proto
from svckit.errors import DomainError

Outcome = SendResult | DomainError


@dataclass(frozen=True, slots=True)
class StoredSend:
    """A message already sent under a (sender, client_msg_id): its chat, its body (None once
    deleted for everyone: the body is erased) and the result it was given."""

    chat_id: int
    body: Body | None
    result: SendResult


@dataclass(frozen=True, slots=True)
class SenderRead:
    """A member who sent in the batch: their unread count and read watermark after it."""

    chat_id: int
    user_id: int
    unread: int
    watermark: int


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

    def drop_non_members(self, sends: Sequence[Outgoing]) -> int:
        """Drop the items whose sender is not a member (``prior`` holds the members) and
        give their seqs back, so seqs stay gapless; return how many were dropped (the
        count the adapter takes off the chat's ``last_seq``)."""
        keep = [i for i in self.indexes if sends[i].sender_id in self.prior]
        dropped = len(self.indexes) - len(keep)
        if dropped:
            self.last_seq -= dropped
            self.indexes = keep
            self._own = None
        return dropped


@dataclass
class SendPlan:
    """What a batch's items became before any seq was taken: the outcomes known already
    (repeats, reused ids), the twins (a later item repeating an earlier one of the same
    batch answers with its outcome) and the fresh items grouped by chat."""

    outcomes: list[Outcome | None]
    twins: dict[int, int]  # item index -> earlier index with the same id
    chats: dict[int, ChatBatch]

    def results(self) -> list[Outcome]:
        """One outcome per item once the fresh ones are filled in: a twin answers like its
        first, and an item still without one was in no chat its sender belongs to."""
        for index, first in self.twins.items():
            self.outcomes[index] = self.outcomes[first]
        return [o if o is not None else ChatNotFound() for o in self.outcomes]


def is_same_send(stored: StoredSend, chat_id: int, body: Body) -> bool:
    """Whether a repeat of a stored (sender, client_msg_id) is a retry of it: the same chat
    and body. A deleted message's body is erased: its chat is all a retry can match."""
    return stored.chat_id == chat_id and (stored.body is None or stored.body == body)


def plan_batch(sends: Sequence[Outgoing], stored: Mapping[tuple[int, str], StoredSend]) -> SendPlan:
    """Answer repeats from ``stored``, pair twins, group the fresh items by chat."""
    outcomes: list[Outcome | None] = [None] * len(sends)
    twins: dict[int, int] = {}
    first_of: dict[tuple[int, str], int] = {}
    chats: dict[int, ChatBatch] = {}
    for index, send in enumerate(sends):
        item, key = send.item, (send.sender_id, send.item.client_msg_id)
        old = stored.get(key) if stored else None
        if old is not None:
            same = is_same_send(old, item.chat_id, item.body)
            outcomes[index] = old.result if same else ClientMsgIdReused()
        elif key in first_of:
            first = sends[first_of[key]].item
            if (first.chat_id, first.body) == (item.chat_id, item.body):
                twins[index] = first_of[key]
            else:
                outcomes[index] = ClientMsgIdReused()
        else:
            first_of[key] = index
            chats.setdefault(item.chat_id, ChatBatch(item.chat_id)).indexes.append(index)
    return SendPlan(outcomes, twins, chats)


def message_order(live: Sequence[ChatBatch]) -> list[tuple[ChatBatch, int, int]]:
    """(chat batch, item index, seq) of every fresh message, in request order: pts and
    message ids follow it."""
    return sorted(
        ((b, i, b.first_seq + n) for b in live for n, i in enumerate(b.indexes)),
        key=lambda p: p[1],
    )


def sender_reads(live: Sequence[ChatBatch], sends: Sequence[Outgoing]) -> list[SenderRead]:
    """Each sender's read mark in ``live``'s chats: their watermark moves to their last
    message of the batch and their unread becomes the count of messages after it (every
    other member's unread grows by the chat's message count)."""
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
    each other member's unread count right after this message, the sender's client_msg_id.
    Needs ``batch.unread`` (every member's count after the batch)."""
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
