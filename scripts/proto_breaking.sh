#!/usr/bin/env bash
# buf breaking, against history: every commit that changed proto/ is checked against its
# parent, and the working tree against HEAD. A commit may declare an intended break with
# a "Proto-Breaking-Change: <why>" trailer in its message (pre-1.0 only; say why).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-node_modules/.bin/buf}
has_protos() { git cat-file -e "$1:proto" 2>/dev/null; }

checked=0
if git rev-parse --verify -q HEAD >/dev/null && has_protos HEAD; then
  "$BUF" breaking proto --against ".git#ref=HEAD,subdir=proto"
  checked=$((checked + 1))
fi
if [[ $(git rev-parse --is-shallow-repository 2>/dev/null) == true ]]; then
  echo "proto-breaking: shallow clone, checked the working tree only"
  exit 0
fi
for commit in $(git rev-list --first-parent HEAD -- proto 2>/dev/null); do
  # buf clones the ref it is given: a full SHA, not an expression like <sha>^.
  parent=$(git rev-parse -q --verify "$commit^" 2>/dev/null) || continue
  has_protos "$parent" || continue
  if git log -1 --format=%B "$commit" | grep -q '^Proto-Breaking-Change:'; then
    echo "proto-breaking: $(git log -1 --format='%h %s' "$commit") declares a break; skipped"
    continue
  fi
  "$BUF" breaking ".git#ref=$commit,subdir=proto" --against ".git#ref=$parent,subdir=proto"
  checked=$((checked + 1))
done
echo "proto-breaking: $checked comparisons, no breaking change"
