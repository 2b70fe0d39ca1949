#!/usr/bin/env bash
# Generate gen/ from proto/ with grpcio-tools and mypy-protobuf.
#   scripts/gen.sh gen    rewrite gen/minitg
#   scripts/gen.sh check  fail when gen/ differs from what proto/ generates
set -euo pipefail
mode=${1:-gen}
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"   # protoc-gen-mypy and protoc-gen-mypy_grpc
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
wkt=$("$VENV/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
mapfile -t protos < <(find proto -name '*.proto' | sort)
"$VENV/bin/python" -m grpc_tools.protoc -Iproto -I"$wkt" \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out=quiet:"$out" --mypy_grpc_out=quiet:"$out" "${protos[@]}"
# Regular packages (not namespace packages) so setuptools and mypy find them.
find "$out/minitg" -type d -exec touch {}/__init__.py \;
touch "$out/minitg/py.typed"
case "$mode" in
  gen)
    rm -rf gen/minitg
    mkdir -p gen
    cp -r "$out/minitg" gen/minitg
    echo "gen: regenerated gen/minitg from ${#protos[@]} proto files"
    ;;
  check)
    if ! diff -r -q gen/minitg "$out/minitg"; then
      echo "gen-check: gen/ is stale; run 'make gen' and commit the result" >&2
      exit 1
    fi
    echo "gen-check: gen/ matches proto/"
    ;;
  *) echo "usage: $0 gen|check" >&2; exit 2 ;;
esac
