#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on localhost for the test suite:
# use running ones; start installed-but-stopped ones; install absent ones from Debian's
# packages when running as root. Exits non-zero, naming the service, when one stays down.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&-; }

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    if port_open "$2"; then return 0; fi
    sleep 0.5
  done
  log "$1 did not open port $2 within $3 s"
  return 1
}

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    log "$1 is not installed and we are not root: install it, or start it on localhost"
    return 1
  fi
  log "installing $1 from Debian's packages"
  if [[ ! -f /tmp/.minitg-apt-updated ]]; then
    apt-get update -qq && touch /tmp/.minitg-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
}

ensure_postgres() {
  port_open 5432 && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install PostgreSQL postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port PostgreSQL 5432 60
  # A fresh install only trusts local socket peers: give the test user a password that
  # the default test URL carries (ignored where the server trusts 127.0.0.1).
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install Redis redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379 30
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install RabbitMQ rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_port RabbitMQ 5672 120
}

ensure_postgres
ensure_redis
ensure_rabbitmq
log "PostgreSQL, Redis and RabbitMQ are up"
