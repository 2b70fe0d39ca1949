"""Client-side probes shared by the api and e2e tests: health and reflection over real gRPC."""

from __future__ import annotations

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def health_status(target: str, service: str = "") -> str:
    """The SERVING / NOT_SERVING name the standard health service reports for ``service``."""
    async with aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def reflected_services(target: str) -> set[str]:
    """The service names the server lists through server reflection."""
    async with aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        call = stub.ServerReflectionInfo(iter([request]), timeout=5)
        async for response in call:
            return {s.name for s in response.list_services_response.service}
    return set()
