"""The presence service: who is online, typing notices, and delivery acks.

Layout: ``api/`` translates, ``usecases/`` orchestrate, ``domain/`` decides (pure),
``adapters/`` do I/O, ``server.py`` composes; the rules, the same in all three services,
are docs/ARCHITECTURE.md, "Code layout and layer rules".
"""
