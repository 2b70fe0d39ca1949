"""minitg's reference client: the REST API and the WebSocket protocol, for Python asyncio.

It is the worked example for client authors (docs/PROTOCOL.md describes the same rules)
and what the e2e tests and the load generator use::

    rest = RestClient("http://127.0.0.1:8080")
    me = await rest.register("ann@example.org", "correct horse", "Ann")
    async with MinitgClient("ws://127.0.0.1:8080", me.access_token) as client:
        ack = await client.send_text(chat_id, "hello")
        update = await client.next_update()
"""

from tgclient.errors import RequestFailed
from tgclient.rest import Account, RestClient
from tgclient.ws import MinitgClient

__all__ = ["Account", "MinitgClient", "RequestFailed", "RestClient"]
