"""The ``minitg`` command: ``serve`` a target, or ``migrate`` the service schemas."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from svckit.config import TARGETS, Config
from svckit.envparse import ConfigError
from svckit.logs import configure_logging
from svckit.migrations import MigrationError, Migrator
from svckit.ports import BusError, StorageError

log = logging.getLogger("minitg")

# The services that own a schema, and the package holding each one's migrations.
MIGRATION_PACKAGES = {
    "auth": "auth_service",
    "chat": "chat_service",
    "presence": "presence_service",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minitg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway and/or services")
    serve.add_argument(
        "--target",
        default="all",
        choices=TARGETS,
        help="all (default: every role in one process) or one role",
    )
    migrate = commands.add_parser("migrate", help="apply or roll back schema migrations")
    migrate.add_argument(
        "direction",
        choices=("up", "down", "status", "check"),
        help="check: exit 0 when the schema has every migration this code ships, else 1",
    )
    migrate.add_argument(
        "--wait",
        action="store_true",
        help="for check: wait (retrying while the database is unreachable) until it is",
    )
    migrate.add_argument(
        "--service",
        default="all",
        choices=("all", *MIGRATION_PACKAGES),
        help="which service's schema (default: all)",
    )
    migrate.add_argument(
        "--steps", type=int, default=1, help="for down: how many migrations to roll back"
    )
    keygen = commands.add_parser(
        "keygen", help="write a new JWT signing key <kid>.pem (rotation: newest kid signs)"
    )
    keygen.add_argument("--dir", required=True, help="the keys directory (MINITG_JWT_KEYS_DIR)")
    keygen.add_argument("--kid", default=None, help="key id (default: the current UTC time)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = Config.from_environ()
        if args.command == "serve":
            cfg.check_target(args.target)
    except ConfigError as exc:
        print(f"minitg: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.log_level, cfg.log_format)
    if args.command == "keygen":
        from pathlib import Path

        from auth_service.adapters.keys import generate_key_file

        print(generate_key_file(Path(args.dir), args.kid))
        return 0
    try:
        if args.command == "serve":
            return _run(_serve(cfg, args.target))
        if args.direction == "check":
            return _run(_check(cfg, args.service, args.wait))
        return _run(_migrate(cfg, args.direction, args.service, args.steps))
    except KeyboardInterrupt:
        return 130
    except StartupError as exc:
        # One plain line on stderr, whatever the log format: an operator (or `make run`)
        # reads why the process exited without a traceback to scroll through.
        print(f"minitg: {exc}", file=sys.stderr)
        return 1


class StartupError(RuntimeError):
    """A backend or listener could not be opened; the message says which."""


# What a missing server, a bad key file or a broken migration raises at start-up: each
# becomes one log line and exit code 1, never a traceback.
STARTUP_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    StorageError,
    BusError,
    MigrationError,
    ValueError,
    ConnectionError,
)


def _run(coro: object) -> int:
    try:
        import uvloop

        return int(uvloop.run(coro))  # type: ignore[arg-type]
    except ImportError:
        return int(asyncio.run(coro))  # type: ignore[arg-type]


async def _serve(cfg: Config, target: str) -> int:
    from svckit.runner import serve

    try:
        return await serve(cfg, target)
    except STARTUP_FAILURES as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StartupError(f"cannot start --target {target}: {reason}") from exc


async def _migrate(cfg: Config, direction: str, service: str, steps: int) -> int:
    from svckit.backends import open_database

    names = list(MIGRATION_PACKAGES) if service == "all" else [service]
    for name in names:
        try:
            db = await open_database(cfg.database_url, name, pool_max=2)
        except STARTUP_FAILURES as exc:
            raise StartupError(f"cannot open the database for {name}: {exc}") from exc
        try:
            await _migrate_one(Migrator(db, MIGRATION_PACKAGES[name]), name, direction, steps)
        except STARTUP_FAILURES as exc:
            raise StartupError(f"migrate {direction} failed for {name}: {exc}") from exc
        finally:
            await db.close()
    return 0


CHECK_INTERVAL_SECONDS = 2.0


async def _check(cfg: Config, service: str, wait: bool) -> int:
    """Exit 0 once every named schema is current; without ``wait`` answer once (1: behind
    or unreachable). A Kubernetes init container runs ``--wait`` so that a first deploy's
    pods start only after the migrate Job has run."""
    names = list(MIGRATION_PACKAGES) if service == "all" else [service]
    last = ""
    while True:
        behind = [f"{name}: {await _schema_state(cfg, name)}" for name in names]
        behind = [line for line in behind if not line.endswith(": current")]
        if not behind:
            print(f"{', '.join(names)}: schema current")
            return 0
        if not wait:
            print("; ".join(behind))
            return 1
        if "; ".join(behind) != last:
            last = "; ".join(behind)
            print(f"waiting for migrations: {last}", flush=True)
        await asyncio.sleep(CHECK_INTERVAL_SECONDS)


async def _schema_state(cfg: Config, name: str) -> str:
    """``current``, ``at version N of M`` or why the database could not say."""
    from svckit.backends import open_database

    try:
        db = await open_database(cfg.database_url, name, pool_max=1)
    except STARTUP_FAILURES as exc:
        return f"database unreachable ({exc})"
    try:
        migrator = Migrator(db, MIGRATION_PACKAGES[name])
        version = await migrator.applied_version()
    except STARTUP_FAILURES as exc:
        return f"database unreachable ({exc})"
    finally:
        await db.close()
    if version >= migrator.latest_version:
        return "current"
    return f"at version {version} of {migrator.latest_version}"


async def _migrate_one(migrator: Migrator, name: str, direction: str, steps: int) -> None:
    if direction == "up":
        print(f"{name}: applied {await migrator.up() or 'nothing (up to date)'}")
    elif direction == "down":
        print(f"{name}: rolled back {await migrator.down(steps) or 'nothing'}")
    else:
        for row in await migrator.status():
            state = "applied" if row.applied else "pending"
            print(f"{name}: {row.version:04d} {row.name} {state}")


if __name__ == "__main__":
    sys.exit(main())
