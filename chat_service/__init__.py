"""The chat service: chats and their members, messages (the send transaction), reads,
edits and deletes, the per-user update log and the outbox that feeds live delivery.

Layout: ``api/`` translates, ``usecases/`` orchestrate, ``domain/`` decides (pure),
``adapters/`` do I/O, ``server.py`` composes; the rules, the same in all three services,
are docs/ARCHITECTURE.md, "Code layout and layer rules".
"""
