"""The presence service: who is online, typing notices, and delivery acks.

Layout (the same in auth_service, chat_service and presence_service):

- ``api/`` translates: the gRPC servicers turn proto requests into domain values, call a
  use case and turn its answer (or domain error) into the reply; nothing else.
- ``usecases/`` orchestrate: one class per area reads through the adapters, asks the
  domain, writes through the adapters, and owns batching and background loops (batchers,
  keepers, timers).
- ``domain/`` decides: frozen dataclasses, errors and pure functions of their inputs and
  ``now``; no I/O, no clock; unit-tested in ``tests/unit``.
- ``adapters/`` do I/O (SQL, Redis, the broker, other services' stubs): they read rows,
  hand them to the domain and write what it decided; where SQL dialects differ, one
  implementation per dialect behind one Protocol port.
- ``server.py`` is the role's composition root; ``migrations/`` holds its schema.

Imports point inward: the api uses the use cases (and the values they return), the use
cases use the adapters and the domain, the adapters use the domain; the domain imports
nothing else of its service.
"""
