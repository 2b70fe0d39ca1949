# syntax=docker/dockerfile:1
# minitg: one image for every role (`minitg serve --target gateway|auth|chat|presence`),
# the migration Job (`minitg migrate up`) and key generation (`minitg keygen`).
#
#   docker build -t minitg:dev .
#   docker run --rm -p 8080:8080 minitg:dev            # the whole system, embedded
#
# Two stages: the builder has compilers (for any dependency without a wheel), builds the
# project's wheel and installs it with its dependencies into /opt/venv; the final image
# is python:3.11-slim plus that venv, nothing else, running as uid 10001.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# .dockerignore admits only what the wheel is built from.
COPY . .
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/minitg-*.whl \
    && /opt/venv/bin/pip uninstall -y pip \
    && /opt/venv/bin/minitg --help >/dev/null

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 minitg \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin minitg \
    && mkdir -p /app/var \
    && chown 10001:10001 /app/var
COPY --from=builder /opt/venv /opt/venv
# Embedded mode (the default CMD) keeps its SQLite files and JWT key in /app/var; split
# roles in Kubernetes run with a read-only root and write nothing.
WORKDIR /app
USER 10001:10001
# 8080: gateway HTTP/WebSocket; 50051: a service role's gRPC (Kubernetes); 9090: every
# role's /metrics (MINITG_METRICS_ADDR; loopback unless set, as Kubernetes does, to
# 0.0.0.0:9090 for a scraper in another container or pod).
EXPOSE 8080 50051 9090
ENTRYPOINT ["minitg"]
CMD ["serve", "--target", "all"]
