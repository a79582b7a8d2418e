#!/usr/bin/env bash
# Builds the C yardsticks: benches/yardstick/udp_echo.c into target/yardstick/udp_echo, and
# the TCP one (benches/yardstick/epoll_echo.c, a minimal edge-triggered epoll echo loop: the
# cost floor) with `cc -O2` into target/yardstick/epoll_echo, where the benches and scripts/client-cost
# look for it when YARDSTICK is not set. The benches also build it themselves when it is missing or
# older than its source. YARDSTICK_SRC names another source to build instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="${YARDSTICK_SRC:-$root/benches/yardstick/epoll_echo.c}"
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
# The UDP yardstick (recvfrom/sendto and recvmmsg/sendmmsg forms), for the udp bench.
cc -O2 -Wall -Wextra -o "$out/udp_echo" "$root/benches/yardstick/udp_echo.c"
echo "built $out/udp_echo"
