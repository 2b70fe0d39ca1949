"""The ChatService servicer: translates proto <-> domain and authorizes.

RPCs not yet built inherit the generated base class's behaviour, which the shared
interceptor turns into UNIMPLEMENTED with reason UNIMPLEMENTED.
"""

from __future__ import annotations

from minitg.chat.v1 import chat_service_pb2_grpc


class ChatServicer(chat_service_pb2_grpc.ChatServiceServicer):
    """minitg.chat.v1.ChatService."""
