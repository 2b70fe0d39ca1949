#!/usr/bin/env bash
# Check the Prometheus rules in k8s/monitoring: syntax and PromQL (`promtool check
# rules`), then the unit tests that feed synthetic series through the alerts
# (`promtool test rules`). promtool comes with Debian's `prometheus` package, installed
# here when absent and we are root (as scripts/ensure_services.sh does for the servers;
# in a container without an init system the package's server is not started).
set -euo pipefail

cd "$(dirname "$0")/.."
RULES=k8s/monitoring/alerts.yaml
RULE_TESTS=k8s/monitoring/alerts_test.yaml

log() { echo "check-alert-rules: $*" >&2; }

if ! command -v promtool >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    log "promtool is not installed and we are not root: install Debian's 'prometheus' package"
    exit 1
  fi
  log "installing promtool (Debian package 'prometheus')"
  if [[ ! -f /tmp/.minitg-apt-updated ]]; then
    apt-get update -qq && touch /tmp/.minitg-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    >/dev/null
fi

promtool check rules "$RULES"
promtool test rules "$RULE_TESTS"
