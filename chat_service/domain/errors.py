"""The chat service's domain errors, with the reasons of proto/README.md."""

from __future__ import annotations

from svckit.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from svckit.reasons import Reason


class ChatNotFound(NotFound):
    """No such chat, or the caller is not a member (deliberately not told apart)."""

    reason = Reason.CHAT_NOT_FOUND

    def __init__(self, message: str = "no such chat") -> None:
        super().__init__(message)


class UserNotFound(NotFound):
    """A named user does not exist; metadata ``user_id`` names the first missing one."""

    reason = Reason.USER_NOT_FOUND

    def __init__(self, user_id: int) -> None:
        super().__init__(f"no user with id {user_id}", metadata={"user_id": str(user_id)})


class ChatFull(FailedPrecondition):
    """The group would exceed the group size limit; nothing was added."""

    reason = Reason.CHAT_FULL


class GroupChatRequired(FailedPrecondition):
    """InviteMembers or LeaveChat on a direct chat."""

    reason = Reason.GROUP_CHAT_REQUIRED

    def __init__(self) -> None:
        super().__init__("this operation needs a group chat")


class ClientMsgIdReused(AlreadyExists):
    """A client_msg_id was already used for a different chat or body."""

    reason = Reason.CLIENT_MSG_ID_REUSED

    def __init__(self) -> None:
        super().__init__("client_msg_id was already used for a different chat or body")


class ClientRequestIdReused(AlreadyExists):
    """A client_request_id was already used with different CreateChat fields."""

    reason = Reason.CLIENT_REQUEST_ID_REUSED

    def __init__(self) -> None:
        super().__init__("client_request_id was already used with different fields")


class NotAllowed(PermissionDenied):
    """Signed in, but the caller's role does not allow the operation."""
