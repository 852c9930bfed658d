#!/usr/bin/env bash
# Footprint benchmark: idle RSS of `dockline run` on the embedded default and with 10,000
# services, and the time to reload that file, next to knot's idle RSS measured in the same
# run (the anchor). Prints figures and ratios; asserts nothing. Runs as root: each server
# runs in a network namespace of its own, so nothing listens outside this benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${SERVICES:-10000}
RELOADS=${RELOADS:-5}
command -v knotd >/dev/null || { apt-get update -qq && apt-get install -y -qq knot; }
# NO_BUILD=1 measures the release binary already built; DOCKLINE_BIN=path another one.
[ -n "${NO_BUILD:-}" ] || [ -n "${DOCKLINE_BIN:-}" ] || cargo build --release -q -p dockline
BIN=${DOCKLINE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-footprint.XXXXXX)
NS=dl-$$-bench-footprint
ip netns add "$NS"
ip -n "$NS" link set lo up
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
wait_ready() {
    for _ in $(seq 1 300); do
        ip netns exec "$NS" curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "not ready on port $1" >&2; return 1
}
# A metric's value from /metrics (cheap to poll, unlike /status with 10,000 services).
metric() { ip netns exec "$NS" curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# knot, idle, no zones.
mkdir -p "$WORK/knot"
cat > "$WORK/knot/knot.conf" <<CONF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@5300
database:
    storage: "$WORK/knot"
CONF
ip netns exec "$NS" knotd -c "$WORK/knot/knot.conf" >"$WORK/knot.log" 2>&1 &
knot_pid=$!; pids+=("$knot_pid")

# dockline on its embedded default.
ip netns exec "$NS" "$BIN" run >"$WORK/default.log" 2>&1 &
default_pid=$!; pids+=("$default_pid")
wait_ready 9470
sleep 2
knot_rss=$(rss_kib "$knot_pid")
default_rss=$(rss_kib "$default_pid")
kill -TERM "$default_pid"; wait "$default_pid" || true

# dockline with N services.
python3 tests/bench/gen_services.py "$N" > "$WORK/big.toml"
"$BIN" check "$WORK/big.toml" >/dev/null
ip netns exec "$NS" "$BIN" run --config "$WORK/big.toml" >"$WORK/big.log" 2>&1 &
big_pid=$!; pids+=("$big_pid")
wait_ready 9470
start_ms=$(echo "$(metric 9470 dockline_config_load_duration_seconds) * 1000" | bc -l)
sleep 2
big_rss=$(rss_kib "$big_pid")
listeners=$(ip netns exec "$NS" ss -Htlnu | wc -l)
reload_ms=()
for i in $(seq 1 "$RELOADS"); do
    kill -HUP "$big_pid"
    for _ in $(seq 1 200); do
        [ "$(metric 9470 'dockline_config_reloads_total{result="ok"}')" = "$i" ] && break
        sleep 0.05
    done
    reload_ms+=("$(echo "$(metric 9470 dockline_config_load_duration_seconds) * 1000" | bc -l | xargs printf '%.1f')")
done
sleep 1
big_rss_after=$(rss_kib "$big_pid")
median_reload=$(printf '%s\n' "${reload_ms[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
kill -TERM "$big_pid"; wait "$big_pid" || true

# Where the memory goes: the same file with the DNS zone, the proxy's listeners, or both off.
parts=()
declare -A part_rss
for off in "DNS" "PROXY" "DNS PROXY"; do
    envs=()
    for c in $off; do envs+=("DOCKLINE__${c}__ENABLED=false"); done
    env "${envs[@]}" ip netns exec "$NS" "$BIN" run --config "$WORK/big.toml" >"$WORK/part.log" 2>&1 &
    part_pid=$!; pids+=("$part_pid")
    wait_ready 9470
    sleep 2
    part_rss[$off]=$(rss_kib "$part_pid")
    parts+=("$(printf '%-44s %10s' "dockline idle, $N services, ${off// /+} off" "${part_rss[$off]}")")
    kill -TERM "$part_pid"; wait "$part_pid" || true
done

printf '\n== footprint (KiB RSS; reload = read + validate + build, ms)\n'
printf '%-44s %10s\n' "knot idle, no zones (anchor)" "$knot_rss"
printf '%-44s %10s   ratio to knot %.2f\n' "dockline idle, embedded default" "$default_rss" "$(echo "$default_rss / $knot_rss" | bc -l)"
printf '%-44s %10s   ratio to knot %.2f\n' "dockline idle, $N services" "$big_rss" "$(echo "$big_rss / $knot_rss" | bc -l)"
printf '%-44s %10s\n' "dockline after $RELOADS reloads of $N services" "$big_rss_after"
printf '%s\n' "${parts[@]}"
# The proxy's share: RSS with it on minus off, over every listening socket of the daemon
# (the admin API's and DNS's included, a handful).
printf '%-44s %10s   %s bytes per listener (%s listeners)\n' "proxy's share (with it minus without)" \
    "$((big_rss - part_rss[PROXY]))" "$(( (big_rss - part_rss[PROXY]) * 1024 / listeners ))" "$listeners"
printf '%-44s %10.1f\n' "dockline start-up load of $N services (ms)" "$start_ms"
printf '%-44s %10s   (all: %s)\n' "dockline reload of $N services, median (ms)" "$median_reload" "${reload_ms[*]}"
