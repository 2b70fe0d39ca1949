"""minitg's load generator: real connections against a real, freshly started system.

``python -m load <scenario>`` starts a deployment (distributed on PostgreSQL, Redis and
RabbitMQ, or embedded), seeds users and chats through the public API, opens authenticated
WebSockets from several worker processes (each its own uvloop), drives a named scenario
and prints what it measured; ``python -m load bench`` runs the standard set and writes
``load/results/``. The same generator also drives a minimal aiohttp fan-out server (the
*control*), so every report says how we compare with raw aiohttp on the same machine.
See load/README.md for the scenarios, the numbers and where the time goes.
"""
