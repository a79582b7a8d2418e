#!/usr/bin/env bash
# Builds the C yardstick (a minimal epoll echo loop: the cost floor) into target/yardstick/epoll_echo,
# where the benches look for it when YARDSTICK is not set. Source: $YARDSTICK_SRC, or
# ../shared/yardstick/epoll_echo.c next to the workspace.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="${YARDSTICK_SRC:-$root/../shared/yardstick/epoll_echo.c}"
out="${CARGO_TARGET_DIR:-$root/target}/yardstick"
if [ ! -f "$src" ]; then
    echo "note: $src not found; the benches will skip the C yardstick" >&2
    exit 0
fi
if ! command -v cc >/dev/null; then
    echo "note: no C compiler (cc); the benches will skip the C yardstick" >&2
    exit 0
fi
mkdir -p "$out"
cc -O2 -Wall -Wextra -o "$out/epoll_echo" "$src"
echo "built $out/epoll_echo (run the benches with YARDSTICK=$out/epoll_echo, or leave it there)"
