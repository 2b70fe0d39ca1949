"""The gateway's aiohttp application: ``create_app(cfg, deps)``.

Routes are added by feature modules; this module only wires the middleware, the
health endpoint, and the dependencies every handler reads through typed ``web.AppKey``s.
``/metrics`` is not served here, on the public port, but by ``svckit.runner``'s metrics
endpoint on ``MINITG_METRICS_ADDR``, as for every role.
"""

from __future__ import annotations

from aiohttp import web

from gateway import openapi, rest_auth, rest_chats, rest_users, ws_handler
from gateway.deps import DEPS, GatewayDeps
from gateway.middleware import harden_headers, observe, quiet_client_protocol_errors
from gateway.ws_handler import WS, WsRuntime
from svckit import metrics
from svckit.grpc_server import run_checks

MAX_BODY_BYTES = 64 * 1024


def create_app(deps: GatewayDeps, ws: WsRuntime) -> web.Application:
    """Build the gateway application around already-opened dependencies."""
    app = web.Application(middlewares=[observe], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(harden_headers)
    quiet_client_protocol_errors()
    app[DEPS] = deps
    app[WS] = ws
    app.router.add_get("/v1/health", health)
    rest_auth.add_routes(app)
    rest_users.add_routes(app)
    rest_chats.add_routes(app)
    ws_handler.add_routes(app)
    openapi.add_routes(app)  # describes every route above: GET /v1/openapi.json and /docs
    return app


async def health(request: web.Request) -> web.Response:
    """200 when every dependency and service answers; 503 naming what does not."""
    deps = request.app[DEPS]
    timeout = min(2.0, deps.cfg.rpc_timeout_seconds)
    own = await run_checks({"hot_state": deps.hot_state.ping, "broker": deps.bus.ping}, timeout)
    services = await deps.clients.health()
    checks = {**services, **own}
    for name, ok in checks.items():
        metrics.DEPENDENCY_UP.labels("gateway", name).set(1 if ok else 0)
    healthy = all(checks.values()) and not deps.draining
    body = {
        "status": "ok" if healthy else ("draining" if deps.draining else "unavailable"),
        "pod_id": deps.cfg.pod_id,
        "checks": {name: "up" if ok else "down" for name, ok in checks.items()},
    }
    return web.json_response(body, status=200 if healthy else 503)
