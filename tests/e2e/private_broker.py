"""A RabbitMQ node of the test's own (port 5690), so a test can restart a broker without
disturbing the shared one that every other test uses."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PORT = 5690


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    """Start, stop and restart one extra RabbitMQ node; its data survives restarts."""

    def __init__(self) -> None:
        self.node = f"minitg-e2e-{os.getpid()}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="minitg-rmq-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{PORT}/"
        (self.base / "mnesia").mkdir()
        (self.base / "log").mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{PORT}\nloopback_users = none\n"
        )
        self.base.chmod(0o755)
        try:
            user = pwd.getpwnam("rabbitmq")
            for path in [self.base, *self.base.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        except KeyError:
            pass  # the server runs as the current user

    def _env(self) -> dict[str, str]:
        base = str(self.base)
        return os.environ | {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(PORT),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(PORT + 20000),
            "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq.conf",
            "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
            "RABBITMQ_LOG_BASE": f"{base}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
            "RABBITMQ_FEATURE_FLAGS_FILE": f"{base}/feature_flags",
            "RABBITMQ_QUORUM_DIR": f"{base}/quorum",
        }

    def start(self, timeout: float = 60) -> None:
        if _port_open(PORT):
            raise RuntimeError(f"port {PORT} is taken: a private broker is already running")
        log = (self.base / "server.out").open("ab")
        subprocess.Popen(["rabbitmq-server"], env=self._env(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not _port_open(PORT):
            if time.monotonic() > deadline:
                raise RuntimeError(f"private RabbitMQ did not start:\n{self.output()}")
            time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "stop"], env=self._env(),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while _port_open(PORT) and time.monotonic() < deadline:
            time.sleep(0.2)

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
