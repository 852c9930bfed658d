#!/usr/bin/env bash
# VIP failover benchmark: three nodes and a client on one bridge (network namespaces). A
# raw-socket prober in the client asks for the VIP every 5 ms and logs each change of the
# answering MAC. Each round takes the current owner away (its link down plus SIGKILL) and
# times the kill to the first ARP reply from another node; then the node comes back.
# Runs dockline (default and fast gossip profiles) and keepalived (VRRPv3, advert_int 1,
# 0.1 and 0.03 s) side by side and prints median, p95 and ratios; asserts nothing. After
# the rounds of each dockline profile, the VIP is watched for LOAD_SECONDS with both cores
# busy: any owner change there is a false failover. Runs as root. KILLS (10),
# LOAD_SECONDS (15) and ONLY (a regex on the run labels, e.g. "dockline") tune it.
set -euo pipefail
cd "$(dirname "$0")/../.."
KILLS=${KILLS:-10}
LOAD_SECONDS=${LOAD_SECONDS:-15}
command -v keepalived >/dev/null || { apt-get update -qq && apt-get install -y -qq keepalived; }
cargo build --release -q -p dockline
cargo build --release -q -p dockline-l2 --example arp_prober
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=$TARGET/release/dockline
PROBER=$TARGET/release/examples/arp_prober
WORK=$(mktemp -d /tmp/dockline-bench-failover.XXXXXX)
P=dl-$$-fo
VIP=192.0.2.10
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in sw client n1 n2 n3; do ip netns del "$P-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

topology_up() {
    ip netns add "$P-sw"
    ip -n "$P-sw" link add br0 type bridge mcast_snooping 0
    ip -n "$P-sw" link set br0 up
    local i=0
    for host in client n1 n2 n3; do
        ip netns add "$P-$host"
        ip -n "$P-$host" link set lo up
        ip -n "$P-$host" link add eth0 type veth peer name port$i netns "$P-sw"
        ip -n "$P-sw" link set port$i master br0 up
        i=$((i + 1))
    done
    ip -n "$P-client" addr add 172.31.0.100/24 dev eth0
    ip -n "$P-client" link set eth0 up
    ip -n "$P-client" route add 192.0.2.0/24 dev eth0
    for n in 1 2 3; do
        ip -n "$P-n$n" link set eth0 address "02:00:00:00:00:1$n"
        ip -n "$P-n$n" addr add "172.31.0.1$n/24" dev eth0
        ip -n "$P-n$n" link set eth0 up
    done
}
topology_down() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for ns in sw client n1 n2 n3; do ip netns del "$P-$ns" 2>/dev/null || true; done
}

declare -A node_pid
# dockline: $1 = node number, $2 = gossip profile.
start_dockline() {
    local n=$1 peers=""
    for m in 1 2 3; do
        [ "$m" = "$n" ] && continue
        peers+=$'[[network.nodes]]\nname = "n'$m$'"\ninternal_ip = "172.31.0.1'$m$'"\npod_cidr = "10.111.'$m$'.0/24"\n'
    done
    echo bench-gossip-key > "$WORK/gossip.key"
    cat > "$WORK/n$n.toml" <<CONF
[node]
name = "n$n"
internal_ip = "172.31.0.1$n"
pod_cidr = "10.111.$n.0/24"
[cluster.gossip]
listen = "172.31.0.1$n:7946"
secret_file = "$WORK/gossip.key"
profile = "$2"
[dns]
enabled = false
[proxy]
enabled = false
[l2]
interfaces = ["eth0"]
$peers
[[pools]]
name = "public"
addresses = ["$VIP/32"]
announce = ["l2"]
[[services]]
name = "web"
type = "LoadBalancer"
load_balancer_ip = "$VIP"
ports = [{ port = 80 }]
CONF
    ip netns exec "$P-n$n" "$BIN" run --config "$WORK/n$n.toml" >>"$WORK/n$n.log" 2>&1 &
    node_pid[$n]=$!; pids+=("$!")
}
settle_dockline() {
    local n=$1
    for _ in $(seq 1 100); do
        ip netns exec "$P-n$n" curl -sf http://127.0.0.1:9470/status 2>/dev/null \
            | grep -o '"state":"alive"' | wc -l | grep -qx 3 && break
        sleep 0.1
    done
    sleep 1
}
kill_dockline() { kill -9 "${node_pid[$1]}"; wait "${node_pid[$1]}" 2>/dev/null || true; }

# keepalived: $1 = node number, $2 = advert_int.
start_keepalived() {
    local n=$1
    cat > "$WORK/k$n.conf" <<CONF
global_defs {
    router_id n$n
    vrrp_version 3
}
vrrp_instance VI {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $((110 - n * 10))
    advert_int $2
    virtual_ipaddress {
        $VIP/32 dev eth0
    }
}
CONF
    rm -f "$WORK/k$n.pid" "$WORK/k$n.vrrp.pid"
    ip netns exec "$P-n$n" keepalived -n -l -D -f "$WORK/k$n.conf" -p "$WORK/k$n.pid" \
        -r "$WORK/k$n.vrrp.pid" >>"$WORK/k$n.log" 2>&1 &
    node_pid[$n]=$!; pids+=("$!")
}
settle_keepalived() { sleep "$(echo "$ADVERT * 3 + 2" | bc)"; }
kill_keepalived() {
    local child
    child=$(cat "$WORK/k$1.vrrp.pid" 2>/dev/null || true)
    kill -9 "${node_pid[$1]}" ${child:+"$child"} 2>/dev/null || true
    wait "${node_pid[$1]}" 2>/dev/null || true
    # The dead master's address would otherwise answer as soon as the link comes back.
    ip -n "$P-n$1" addr del "$VIP/32" dev eth0 2>/dev/null || true
}

# The last MAC the prober logged, and the line count of its log.
last_mac() { tail -n 1 "$PROBE" | awk '{print $2}'; }

# $1 = label, $2 = start function, $3 = settle function, $4 = kill function, $5 = argument.
run() {
    local label=$1 start=$2 settle=$3 kill=$4 arg=$5
    [[ $label =~ ${ONLY:-.} ]] || return 0
    topology_up
    for n in 1 2 3; do "$start" "$n" "$arg"; done
    PROBE=$WORK/$label.probe
    : > "$PROBE"
    ip netns exec "$P-client" "$PROBER" eth0 172.31.0.100 "$VIP" 5 > "$PROBE" &
    local prober=$!; pids+=("$prober")
    for n in 1 2 3; do "$settle" "$n"; done
    [ -s "$PROBE" ] || { echo "$label: nobody answers for $VIP" >&2; topology_down; return; }
    local times=()
    for k in $(seq 1 "$KILLS"); do
        local mac owner lines t0 t1=""
        mac=$(last_mac)
        owner=${mac: -1}
        lines=$(wc -l < "$PROBE")
        t0=$(date +%s%N)
        ip -n "$P-n$owner" link set eth0 down
        "$kill" "$owner"
        for _ in $(seq 1 3000); do
            t1=$(tail -n +"$((lines + 1))" "$PROBE" | awk -v m="$mac" '$2 != m {print $1; exit}')
            [ -n "$t1" ] && break
            sleep 0.005
        done
        if [ -z "$t1" ]; then echo "$label round $k: no takeover within 15 s" >&2; break; fi
        times+=("$(( (t1 - t0) / 1000 ))")
        ip -n "$P-n$owner" link set eth0 up
        "$start" "$owner" "$arg"
        "$settle" "$owner"
    done
    local false_failovers="-"
    if [ "$start" = start_dockline ]; then
        local before loaders=()
        before=$(wc -l < "$PROBE")
        for _ in 1 2; do (while :; do :; done) & loaders+=("$!"); pids+=("$!"); done
        sleep "$LOAD_SECONDS"
        kill -9 "${loaders[@]}"
        wait "${loaders[@]}" 2>/dev/null || true
        false_failovers=$(( $(wc -l < "$PROBE") - before ))
    fi
    printf '%s\n' "${times[@]}" | sort -n > "$WORK/$label.times"
    local n median p95
    n=$(wc -l < "$WORK/$label.times")
    median=$(awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}' "$WORK/$label.times")
    p95=$(awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); print a[i]/1000}' "$WORK/$label.times")
    printf '%-28s kills %2d  median %8.1f ms  p95 %8.1f ms  false failovers under load: %s\n' \
        "$label" "$n" "$median" "$p95" "$false_failovers"
    echo "$median" > "$WORK/$label.median"
    topology_down
}

echo "VIP failover, $KILLS kills each (link down + SIGKILL of the owner), prober every 5 ms"
run dockline-default start_dockline settle_dockline kill_dockline default
run dockline-fast start_dockline settle_dockline kill_dockline fast
for ADVERT in 1 0.1 0.03; do
    run "keepalived-advert-$ADVERT" start_keepalived settle_keepalived kill_keepalived "$ADVERT"
done
ratio() {
    if [ -s "$WORK/$1.median" ] && [ -s "$WORK/$2.median" ]; then
        echo "scale=2; $(cat "$WORK/$1.median") / $(cat "$WORK/$2.median")" | bc
    else
        echo "-"
    fi
}
echo "ratios of medians (dockline / keepalived; below 1 = dockline faster):"
for a in 1 0.1 0.03; do
    echo "  default vs advert_int $a: $(ratio dockline-default "keepalived-advert-$a")"
    echo "  fast    vs advert_int $a: $(ratio dockline-fast "keepalived-advert-$a")"
done
