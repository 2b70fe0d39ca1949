"""The PresenceService servicer: translates proto <-> domain and authorizes.

RPCs not yet built inherit the generated base class's behaviour, which the shared
interceptor turns into UNIMPLEMENTED with reason UNIMPLEMENTED.
"""

from __future__ import annotations

from minitg.presence.v1 import presence_service_pb2_grpc


class PresenceServicer(presence_service_pb2_grpc.PresenceServiceServicer):
    """minitg.presence.v1.PresenceService."""
