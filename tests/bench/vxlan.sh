#!/usr/bin/env bash
# Pod network benchmark: iperf3 TCP between two pods, 1 and 4 streams, over the underlay
# alone, the kernel's vxlan driver (the anchor), dockline's VXLAN between two dockline
# nodes, and dockline to a kernel vxlan node, all in one run on the same two namespaces
# "nodes" joined by a veth link, each with a pod namespace behind it. Prints the median
# Gbit/s of RUNS runs, the ratio to kernel vxlan, dockline's CPU (both nodes, user +
# system) per Gbit/s and its RSS; asserts nothing. Runs as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
need=()
for p in iperf3:iperf3 ethtool:ethtool bridge:iproute2; do
    command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# NO_BUILD=1 measures the release binary already built (or DOCKLINE_BIN, another build).
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p dockline
BIN=${DOCKLINE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-vxlan.XXXXXX)
P=dl-$$-bench
N1=$P-n1 N2=$P-n2 P1=$P-p1 P2=$P-p2
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$N1" "$N2" "$P1" "$P2"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in "$N1" "$N2" "$P1" "$P2"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$N1" link add eth0 type veth peer name eth0 netns "$N2"
ip -n "$N1" addr add 172.30.0.11/24 dev eth0
ip -n "$N2" addr add 172.30.0.12/24 dev eth0
for i in 1 2; do
    node=$P-n$i pod=$P-p$i
    ip -n "$node" link set eth0 up
    ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$node" link add pod0 type veth peer name eth0 netns "$pod"
    ip -n "$node" addr add 10.111.$i.1/24 dev pod0
    ip -n "$node" link set pod0 up
    ip -n "$pod" addr add 10.111.$i.10/24 dev eth0
    ip -n "$pod" link set eth0 up
    # The overlay's MTU, so TCP's segments fit without path-MTU discovery.
    ip -n "$pod" link set eth0 mtu 1450
    ip -n "$pod" route add default via 10.111.$i.1
done
ip netns exec "$P2" iperf3 -s -D -p 5201 --logfile "$WORK/iperf3-server.log"
ip netns exec "$N2" iperf3 -s -D -p 5201 --logfile "$WORK/iperf3-underlay.log"

# Node N (1 or 2) as a kernel vxlan VTEP flooding to the other node; a second argument
# "userspace-peer" completes inner checksums in software (veth leaves them partial, which a
# userspace peer sees as bad), left on between two kernels so the anchor runs at its best.
kernel_up() {
    local n=$1 other=$((3 - $1)) node=$P-n$1
    ip -n "$node" link add vx0 type vxlan id 42 local 172.30.0.1$n dstport 4789 dev eth0
    ip -n "$node" link set vx0 address 02:4c:0a:6f:0$n:01 mtu 1450
    ip netns exec "$node" bridge fdb append 00:00:00:00:00:00 dev vx0 dst 172.30.0.1$other
    if [ "${2:-}" = userspace-peer ]; then
        ip netns exec "$node" ethtool -K vx0 tx off >/dev/null
    fi
    ip -n "$node" addr add 10.111.$n.1/16 dev vx0
    ip -n "$node" link set vx0 up
    ip -n "$node" route add 10.111.$other.0/24 via 10.111.$other.1 dev vx0
}
kernel_down() { ip -n "$P-n$1" link del vx0 2>/dev/null || true; }

dockline_up() {
    local n=$1 other=$((3 - $1))
    cat > "$WORK/node-$n.toml" <<CONF
[node]
name = "node-$n"
internal_ip = "172.30.0.1$n"
pod_cidr = "10.111.$n.0/24"
[dns]
enabled = false
[proxy]
enabled = false
[network]
tunnel_mode = "VXLAN"
[network.vxlan]
vni = 42
[[network.nodes]]
name = "node-$other"
internal_ip = "172.30.0.1$other"
pod_cidr = "10.111.$other.0/24"
CONF
    ip netns exec "$P-n$n" "$BIN" run --config "$WORK/node-$n.toml" > "$WORK/node-$n.log" 2>&1 &
    pids+=($!)
    eval "DOCKLINE_$n=$!"
    for _ in $(seq 50); do
        ip -n "$P-n$n" link show dockline0 >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "dockline did not bring up dockline0 on node $n" >&2
    cat "$WORK/node-$n.log" >&2
    exit 1
}
dockline_down() {
    local pid_var=DOCKLINE_$1
    kill "${!pid_var}" 2>/dev/null || true
    wait "${!pid_var}" 2>/dev/null || true
    eval "DOCKLINE_$1="
}

# CPU ticks (user + system) of the dockline processes running now.
dockline_ticks() {
    local total=0
    for n in 1 2; do
        local pid_var=DOCKLINE_$n
        [ -n "${!pid_var:-}" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")))
    done
    echo "$total"
}

# One iperf3 run with STREAMS streams: Gbit/s, and dockline's CPU seconds per second.
measure() {
    local from=$1 to=$2 streams=$3 before after gbits
    before=$(dockline_ticks)
    gbits=$(ip netns exec "$from" iperf3 -c "$to" -p 5201 -t "$DURATION" -P "$streams" -J |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
    after=$(dockline_ticks)
    python3 -c "print($gbits, ($after - $before) / $(getconf CLK_TCK) / $DURATION)"
}

# Median Gbit/s and CPU over RUNS runs, as "gbits cpu".
median() {
    local from=$1 to=$2 streams=$3
    for _ in $(seq "$RUNS"); do measure "$from" "$to" "$streams"; done |
        sort -n | awk '{g[NR]=$1; c[NR]=$2} END {m=int((NR+1)/2); print g[m], c[m]}'
}

declare -A result
run_case() {
    local name=$1 from=$2 to=$3
    for streams in 1 4; do
        result[$name,$streams]=$(median "$from" "$to" "$streams")
    done
}

wait_ping() {
    for _ in $(seq 50); do
        ip netns exec "$P1" ping -c 1 -W 1 10.111.2.10 >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "pods cannot reach each other" >&2
    exit 1
}

# Others' work on the machine skews every figure: the load average goes with them.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_case underlay "$N1" 172.30.0.12

kernel_up 1; kernel_up 2; wait_ping
run_case kernel "$P1" 10.111.2.10
kernel_down 1; kernel_down 2

dockline_up 1; dockline_up 2; wait_ping
run_case dockline "$P1" 10.111.2.10
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$DOCKLINE_1/status")
dockline_down 2

kernel_up 2 userspace-peer; wait_ping
run_case mixed "$P1" 10.111.2.10
dockline_down 1; kernel_down 2

echo
echo "iperf3 TCP pod to pod, ${DURATION}s, median of $RUNS runs (veth underlay, MTU 1500)"
printf '%-34s %8s %8s %14s %14s\n' path streams Gbit/s "vs kernel" "cpu s/Gbit"
for name in underlay kernel dockline mixed; do
    case $name in
        underlay) label="underlay (no tunnel)";;
        kernel) label="kernel vxlan <-> kernel vxlan";;
        dockline) label="dockline <-> dockline";;
        mixed) label="dockline -> kernel vxlan";;
    esac
    for streams in 1 4; do
        read -r gbits cpu <<< "${result[$name,$streams]}"
        read -r anchor _ <<< "${result[kernel,$streams]}"
        ratio=$(python3 -c "print(f'{$gbits / $anchor:.2f}x')")
        per_gbit=-
        if [ "$name" = dockline ] || [ "$name" = mixed ]; then
            per_gbit=$(python3 -c "print(f'{$cpu / max($gbits, 1e-9):.3f}')")
        fi
        printf '%-34s %8s %8.2f %14s %14s\n' "$label" "$streams" "$gbits" "$ratio" "$per_gbit"
    done
done
echo "dockline RSS (node 1, after the dockline <-> dockline runs): $((rss_kib / 1024)) MiB"
echo "load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
