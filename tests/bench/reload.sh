#!/usr/bin/env bash
# Reload cost on one node: the CPU a reload of a SERVICES-service config (10,000, from
# gen_services.py) costs, for a change of one service's port (what a fleet push usually is)
# and for a change of every service (each round moves every port). One node in a network
# namespace of its own, reloaded by SIGHUP after each write; a round ends when the node's
# log says "config loaded" and its CPU has settled (components finish after the publish).
# Prints the median CPU per reload (ms, from /proc/PID/stat) and the median load time the
# node logs, with the load average. With PERF=1 it also records the one-service rounds
# with `perf record` and prints the hottest symbols per thread. Asserts nothing.
# SERVICES and ROUNDS (20) tune it; DOCKLINE_BIN skips the release build. Runs as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVICES=${SERVICES:-10000}
ROUNDS=${ROUNDS:-20}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${DOCKLINE_BIN:-}" ]; then cargo build --release -q -p dockline; fi
BIN=${DOCKLINE_BIN:-$TARGET/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-reload.XXXXXX)
NS=dl-$$-rl
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up

python3 tests/bench/gen_services.py "$SERVICES" >"$WORK/base.toml"
# Round R of mode one: the first service's port becomes 1000 + R; of mode all: every
# service's port 80 becomes 1000 + R.
config() {
    case $1 in
        one) sed "0,/port = 80,/s//port = $((1000 + $2)),/" "$WORK/base.toml" ;;
        all) sed "s/port = 80,/port = $((1000 + $2)),/" "$WORK/base.toml" ;;
    esac
}
config one 0 >"$WORK/node.toml"
ip netns exec "$NS" "$BIN" run --config "$WORK/node.toml" >"$WORK/node.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    ip netns exec "$NS" curl -sf -o /dev/null http://127.0.0.1:9470/readyz && break
    sleep 0.1
done
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# Waits for the next "config loaded" past byte $1 of the log, then for the CPU to settle
# (no tick for 300 ms): the components apply the snapshot after it is published.
settle() {
    local deadline=$((SECONDS + 60)) before after
    # grep reads to the end (no -q): under pipefail, tail cut off early would fail the test.
    until tail -c +"$(($1 + 1))" "$WORK/node.log" | grep "config loaded" >/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "no reload logged" >&2; tail "$WORK/node.log" >&2; exit 1; }
        sleep 0.01
    done
    before=$(cpu_ticks)
    while sleep 0.3; after=$(cpu_ticks); [ "$after" != "$before" ]; do before=$after; done
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rounds() { # $1 = one or all, $2 = first round number
    local r offset t0 cpu
    : >"$WORK/$1.cpu"
    for r in $(seq "$2" $(($2 + ROUNDS - 1))); do
        config "$1" "$r" >"$WORK/node.toml.new"
        mv "$WORK/node.toml.new" "$WORK/node.toml"
        offset=$(stat -c %s "$WORK/node.log")
        t0=$(cpu_ticks)
        kill -HUP "$pid"
        settle "$offset"
        cpu=$(( $(cpu_ticks) - t0 ))
        echo "scale=1; $cpu * 1000 / $TICKS" | bc >>"$WORK/$1.cpu"
    done
    # The duration the node logged for each load (parse, validate, build, apply).
    grep "config loaded" "$WORK/node.log" | tail -n "$ROUNDS" |
        sed -E 's/.*duration_ms=([0-9.]+).*/\1/' >"$WORK/$1.load"
}

# Idle CPU over the settle window is part of each round: measure it to subtract by eye.
sleep 2
t0=$(cpu_ticks); sleep 3; idle=$(echo "scale=1; ($(cpu_ticks) - $t0) * 1000 / $TICKS / 3" | bc)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${PERF:-0}" = 1 ]; then
    perf record -q -g -o "$WORK/perf.data" -p "$pid" 2>/dev/null &
    perf_pid=$!
    sleep 0.5
fi
rounds one 1
if [ "${PERF:-0}" = 1 ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
rounds all $((ROUNDS + 1))
echo "reload of $SERVICES services, $ROUNDS rounds each (node idle: $idle ms CPU per s)"
printf '%-18s %14s %16s\n' change "CPU/reload" "logged load"
printf '%-18s %11s ms %13s ms\n' "one service" "$(median <"$WORK/one.cpu")" "$(median <"$WORK/one.load")"
printf '%-18s %11s ms %13s ms\n' "every service" "$(median <"$WORK/all.cpu")" "$(median <"$WORK/all.load")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${PERF:-0}" = 1 ]; then
    perf report -i "$WORK/perf.data" --no-children --sort comm,sym --stdio 2>/dev/null |
        grep -v '^#' | grep -E '^ +[0-9]' | head -60
fi
