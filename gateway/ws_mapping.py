"""The client protocol's payloads (minitg.gateway.v1 messages.proto) to and from the chat
service's requests, for the WebSocket requests off the send path.

The client messages are their own contract: they share field numbers and the data types
(Message, Update, State) with the service messages but not the message types, so each one
is rebuilt here field by field. Sends, acks and typing, the frequent ones, are mapped
where they are relayed (gateway/relays.py, gateway/ws_dispatch.py).
"""

from __future__ import annotations

from minitg.chat.v1 import chat_service_pb2
from minitg.gateway.v1 import frames_pb2, messages_pb2


def read_history_request(msg: messages_pb2.ReadHistory) -> chat_service_pb2.ReadHistoryRequest:
    return chat_service_pb2.ReadHistoryRequest(chat_id=msg.chat_id, max_seq=msg.max_seq)


def read_history_result(reply: chat_service_pb2.ReadHistoryResponse) -> frames_pb2.Result:
    read = messages_pb2.ReadHistoryResult(
        pts=reply.pts, pts_count=reply.pts_count, unread_count=reply.unread_count
    )
    return frames_pb2.Result(read_history=read)


def get_state_result(reply: chat_service_pb2.GetStateResponse) -> frames_pb2.Result:
    return frames_pb2.Result(get_state=messages_pb2.GetStateResult(state=reply.state))


def get_history_request(msg: messages_pb2.GetHistory) -> chat_service_pb2.GetHistoryRequest:
    request = chat_service_pb2.GetHistoryRequest(
        chat_id=msg.chat_id, page_size=msg.page_size, page_token=msg.page_token
    )
    anchor = msg.WhichOneof("anchor")
    if anchor is not None:  # an anchor of 0 (after_seq) is still an anchor
        setattr(request, anchor, getattr(msg, anchor))
    return request


def get_history_result(reply: chat_service_pb2.GetHistoryResponse) -> frames_pb2.Result:
    page = messages_pb2.GetHistoryResult(
        messages=reply.messages,
        next_page_token=reply.next_page_token,
        prev_page_token=reply.prev_page_token,
    )
    return frames_pb2.Result(get_history=page)


def edit_message_request(msg: messages_pb2.EditMessage) -> chat_service_pb2.EditMessageRequest:
    request = chat_service_pb2.EditMessageRequest(chat_id=msg.chat_id, message_id=msg.message_id)
    if msg.HasField("body"):  # an absent body stays absent, so the service says INVALID_FIELD
        request.body.CopyFrom(msg.body)
    return request


def edit_message_result(reply: chat_service_pb2.EditMessageResponse) -> frames_pb2.Result:
    edited = messages_pb2.EditMessageResult(pts=reply.pts, pts_count=reply.pts_count)
    edited.message.CopyFrom(reply.message)
    return frames_pb2.Result(edit_message=edited)


def delete_messages_request(
    msg: messages_pb2.DeleteMessages,
) -> chat_service_pb2.DeleteMessagesRequest:
    return chat_service_pb2.DeleteMessagesRequest(
        chat_id=msg.chat_id, message_ids=msg.message_ids, for_everyone=msg.for_everyone
    )


def delete_messages_result(reply: chat_service_pb2.DeleteMessagesResponse) -> frames_pb2.Result:
    deleted = messages_pb2.DeleteMessagesResult(pts=reply.pts, pts_count=reply.pts_count)
    return frames_pb2.Result(delete_messages=deleted)


def get_difference_request(
    msg: messages_pb2.GetDifference,
) -> chat_service_pb2.GetDifferenceRequest:
    return chat_service_pb2.GetDifferenceRequest(pts=msg.pts, limit=msg.limit)


def get_difference_result(
    request_id: int, chunk: chat_service_pb2.GetDifferenceResponse
) -> frames_pb2.Result:
    """One chunk; the status numbers of both enums are the same by design (messages.proto)."""
    result = frames_pb2.Result(request_id=request_id)
    part = result.get_difference
    part.updates.extend(chunk.updates)
    part.status = chunk.status  # type: ignore[assignment]
    part.intermediate_pts = chunk.intermediate_pts
    if chunk.HasField("state"):  # set on the final chunk only
        part.state.CopyFrom(chunk.state)
    return result
