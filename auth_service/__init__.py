"""The auth service: accounts, password sign-in, access and refresh tokens, sessions,
profiles, and the shared list of revoked sessions.

Layout: ``api/`` translates, ``usecases/`` orchestrate, ``domain/`` decides (pure),
``adapters/`` do I/O, ``server.py`` composes; the rules, the same in all three services,
are docs/ARCHITECTURE.md, "Code layout and layer rules".
"""
