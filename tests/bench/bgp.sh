#!/usr/bin/env bash
# BGP table push: dockline next to GoBGP (the anchor) pushing the same /32s into the same
# BIRD, in one run. For each size: the time from BIRD's session reaching Established to
# every prefix in BIRD's table (median of $RUNS runs), the ratio dockline/GoBGP, and
# dockline's RSS with that table, and the time from SIGKILL of dockline to BIRD having
# removed its routes (graceful restart off: the kernel closes the TCP session). Then
# failure detection of a frozen node (SIGSTOP: TCP open but silent), with BFD (300 ms x 3)
# against the hold time alone (9 s). Prints figures; asserts nothing. Runs as root;
# everything lives in two namespaces of its own.
#
# Times are taken by polling `birdc` every few milliseconds, the same way for both
# speakers, so both carry the same few-ms polling error. GoBGP gets its routes through its
# CLI before the session is enabled (slow to load, not timed).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"10000 100000"}
# GoBGP's CLI loads about 100 routes a second per process: above this size it is skipped.
GOBGP_MAX=${GOBGP_MAX:-10000}
RUNS=${RUNS:-3}

missing=()
command -v bird >/dev/null || missing+=(bird2)
command -v gobgpd >/dev/null || missing+=(gobgpd)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p dockline
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-bgp.XXXXXX)
ROUTER=dl-$$-bench-router
SPEAKER=dl-$$-bench-speaker
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ROUTER" 2>/dev/null || true
    ip netns del "$SPEAKER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$ROUTER"
ip netns add "$SPEAKER"
ip -n "$ROUTER" link add eth0 type veth peer name eth0 netns "$SPEAKER"
ip -n "$ROUTER" addr add 172.31.0.1/24 dev eth0
ip -n "$SPEAKER" addr add 172.31.0.2/24 dev eth0
for ns in "$ROUTER" "$SPEAKER"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
done

now_ms() { date +%s%3N; }
birdc_() { ip netns exec "$ROUTER" birdc -s "$WORK/bird.ctl" "$@"; }
established() { birdc_ show protocols speaker | grep -q Established; }
routes_in_bird() { birdc_ show route count | awk '/routes/ {print $1; exit}'; }

start_bird() {
    cat > "$WORK/bird.conf" <<CONF
router id 172.31.0.1;
protocol device { }
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp speaker {
    local 172.31.0.1 as 64512; neighbor 172.31.0.2 as 64513;
    hold time 9; keepalive time 3; connect retry time 1; connect delay time 1;
    error wait time 1, 2; bfd on;
    ipv4 { import all; export none; };
}
CONF
    rm -f "$WORK/bird.ctl"
    ip netns exec "$ROUTER" bird -f -c "$WORK/bird.conf" -s "$WORK/bird.ctl" &
    bird_pid=$!
    pids+=("$bird_pid")
    until [ -S "$WORK/bird.ctl" ]; do sleep 0.05; done
}

stop_bird() {
    kill "$bird_pid" 2>/dev/null || true
    wait "$bird_pid" 2>/dev/null || true
}

# Prints milliseconds from Established to $1 routes in BIRD.
time_to_table() {
    local want=$1 up
    until established; do sleep 0.002; done
    up=$(now_ms)
    until [ "$(routes_in_bird)" = "$want" ]; do sleep 0.002; done
    echo $(($(now_ms) - up))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

# $1 prefixes; $2 extra keys of the peer (e.g. "bfd = true").
write_dockline_config() {
    python3 - "$1" "$WORK/dockline.toml" "${2:-}" <<'PY'
import sys
size, path = int(sys.argv[1]), sys.argv[2]
# A /12 of cluster IPs: the default /16 holds 65,534, short of 100,000 services.
conf = ['[node]\nname = "bench"\ninternal_ip = "172.31.0.2"\n',
        '[cluster]\nservice_cidr = "10.32.0.0/12"\n',
        '[dns]\nenabled = false\n[proxy]\nenabled = false\n',
        '[bgp]\nasn = 64513\n[[bgp.peers]]\naddress = "172.31.0.1"\nasn = 64512\n'
        'hold_time = 9\nconnect_retry_s = 1\ngraceful_restart = false\n' + sys.argv[3] + '\n',
        '[[pools]]\nname = "bench"\naddresses = ["10.128.0.0/10"]\nannounce = ["bgp"]\n']
for i in range(size):
    ip = f"10.{128 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    conf.append(f'[[services]]\nname = "s{i}"\ntype = "LoadBalancer"\nload_balancer_ip = "{ip}"\n'
                f'pool = "bench"\nallocate_load_balancer_node_ports = false\nports = [{{ port = 80 }}]\n')
open(path, "w").write("".join(conf))
PY
}

# Sets push_ms, rss_kb and kill_ms for one dockline run of $1 prefixes.
dockline_run() {
    local size=$1 killed
    start_bird
    ip netns exec "$SPEAKER" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 &
    dockline_pid=$!
    pids+=("$dockline_pid")
    push_ms=$(time_to_table "$size")
    rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$dockline_pid/status")
    kill -9 "$dockline_pid"
    killed=$(now_ms)
    until [ "$(routes_in_bird)" = "0" ]; do sleep 0.002; done
    kill_ms=$(($(now_ms) - killed))
    wait "$dockline_pid" 2>/dev/null || true
    stop_bird
}

# Sets push_ms for one GoBGP run of $1 prefixes.
gobgp_run() {
    local size=$1 api="unix://$WORK/gobgp.sock"
    start_bird
    cat > "$WORK/gobgp.toml" <<CONF
[global.config]
as = 64513
router-id = "172.31.0.2"
port = 179
[[neighbors]]
[neighbors.config]
neighbor-address = "172.31.0.1"
peer-as = 64512
admin-down = true
[neighbors.timers.config]
hold-time = 9
keepalive-interval = 3
connect-retry = 1
CONF
    rm -f "$WORK/gobgp.sock"
    ip netns exec "$SPEAKER" gobgpd -f "$WORK/gobgp.toml" -p --pprof-disable \
        --api-hosts "$api" >"$WORK/gobgp.log" 2>&1 &
    gobgp_pid=$!
    pids+=("$gobgp_pid")
    until [ -S "$WORK/gobgp.sock" ]; do sleep 0.05; done
    python3 -c "
import sys
for i in range($size):
    print(f'10.{128 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32')
" | xargs -P 2 -I{} ip netns exec "$SPEAKER" gobgp --target "$api" global rib add -a ipv4 {} nexthop 172.31.0.2
    ip netns exec "$SPEAKER" gobgp --target "$api" neighbor 172.31.0.1 enable >/dev/null
    push_ms=$(time_to_table "$size")
    kill -9 "$gobgp_pid"
    wait "$gobgp_pid" 2>/dev/null || true
    stop_bird
}

printf '%-9s %-22s %-22s %-8s %-12s %s\n' prefixes "dockline ms (median)" "GoBGP ms (median)" ratio "dockline RSS" "kill->withdrawn ms"
for size in $SIZES; do
    write_dockline_config "$size"
    "$BIN" check "$WORK/dockline.toml" >/dev/null
    dl=() rss=() kills=() gb=()
    for _ in $(seq "$RUNS"); do
        dockline_run "$size"
        dl+=("$push_ms")
        rss+=("$rss_kb")
        kills+=("$kill_ms")
    done
    if [ "$size" -le "$GOBGP_MAX" ]; then
        for _ in $(seq "$RUNS"); do
            gobgp_run "$size"
            gb+=("$push_ms")
        done
    fi
    dl_median=$(printf '%s\n' "${dl[@]}" | median)
    rss_median=$(printf '%s\n' "${rss[@]}" | median)
    kill_median=$(printf '%s\n' "${kills[@]}" | median)
    if [ ${#gb[@]} -gt 0 ]; then
        gb_median=$(printf '%s\n' "${gb[@]}" | median)
        ratio=$(awk -v a="$dl_median" -v b="$gb_median" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    else
        gb_median="skipped" ratio="-"
    fi
    printf '%-9s %-22s %-22s %-8s %-12s %s\n' "$size" "$dl_median (${dl[*]})" \
        "$gb_median (${gb[*]:-})" "$ratio" "$((rss_median / 1024)) MiB" "$kill_median (${kills[*]})"
done

# Failure detection of a frozen node, 100 prefixes: BFD against the hold time alone.
freeze_ms() {
    local killed
    start_bird
    ip netns exec "$SPEAKER" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 &
    dockline_pid=$!
    pids+=("$dockline_pid")
    time_to_table 100 >/dev/null
    # With BFD, wait for it to be up on BIRD's side before freezing.
    if grep -q "bfd = true" "$WORK/dockline.toml"; then
        until birdc_ show bfd sessions | grep -q " Up "; do sleep 0.05; done
    fi
    kill -STOP "$dockline_pid"
    killed=$(now_ms)
    until [ "$(routes_in_bird)" = "0" ]; do sleep 0.002; done
    freeze=$(($(now_ms) - killed))
    kill -9 "$dockline_pid"
    wait "$dockline_pid" 2>/dev/null || true
    stop_bird
}
printf '\n%-22s %s\n' "frozen node" "routes gone after ms (median, runs)"
for mode in "bfd = true" ""; do
    write_dockline_config 100 "$mode"
    runs=()
    for _ in $(seq "$RUNS"); do
        freeze_ms
        runs+=("$freeze")
    done
    printf '%-22s %s (%s)\n' "${mode:-hold time only}" "$(printf '%s\n' "${runs[@]}" | median)" "${runs[*]}"
done
