#!/usr/bin/env bash
# Fleet config benchmark: the time from a change to "applied on every node", over etcd and
# over files, in one run on one machine. A 3-member etcd cluster (Debian's etcd-server) and
# NODES dockline nodes (5), each in a network namespace on one bridge, all on one config of
# SERVICES services (10,000, from gen_services.py). Each round changes the config a little
# (one service's port) and waits until every node's /status shows it:
# - etcd: `dockline config push`, until every node reports the pushed revision;
# - file (the anchor): the same document written to each node's own file at once (a rename
#   each), until every node has counted one more accepted reload.
# Prints median and p99 over ROUNDS (50) rounds and the etcd/file ratio; asserts nothing.
# The goal of issue 17 is an etcd p99 under 1 s with 10,000 services. Runs as root.
# NODES, SERVICES and ROUNDS tune it; DOCKLINE_BIN skips the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-5}
SERVICES=${SERVICES:-10000}
ROUNDS=${ROUNDS:-50}
command -v etcd >/dev/null || { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client; }
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
# DOCKLINE_BIN runs a binary already built (a smoke run of this script with a debug build).
if [ -z "${DOCKLINE_BIN:-}" ]; then cargo build --release -q -p dockline; fi
BIN=${DOCKLINE_BIN:-$TARGET/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-etcd.XXXXXX)
P=dl-$$-et
MEMBERS=(172.31.0.21 172.31.0.22 172.31.0.23)
ENDPOINTS="\"http://172.31.0.21:2379\", \"http://172.31.0.22:2379\", \"http://172.31.0.23:2379\""
pids=()
namespaces=(sw e1 e2 e3)
for n in $(seq 1 "$NODES"); do namespaces+=("n$n"); done
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "${namespaces[@]}"; do ip netns del "$P-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# One bridge; every other namespace plugged in by its eth0.
ip netns add "$P-sw"
ip -n "$P-sw" link add br0 type bridge
ip -n "$P-sw" link set br0 up
i=0
for host in "${namespaces[@]:1}"; do
    ip netns add "$P-$host"
    ip -n "$P-$host" link set lo up
    ip -n "$P-$host" link add eth0 type veth peer name port$i netns "$P-sw"
    ip -n "$P-sw" link set port$i master br0 up
    case $host in
        e*) addr=172.31.0.2${host#e} ;;
        n*) addr=172.31.0.$((100 + ${host#n})) ;;
    esac
    ip -n "$P-$host" addr add "$addr/24" dev eth0
    ip -n "$P-$host" link set eth0 up
    i=$((i + 1))
done

cluster="e1=http://172.31.0.21:2380,e2=http://172.31.0.22:2380,e3=http://172.31.0.23:2380"
for m in 1 2 3; do
    ip=${MEMBERS[$((m - 1))]}
    ip netns exec "$P-e$m" etcd --name "e$m" --data-dir "$WORK/etcd$m" \
        --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
        --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --quota-backend-bytes 8589934592 --max-request-bytes 33554432 \
        >"$WORK/etcd$m.log" 2>&1 &
    pids+=($!)
done
etcdctl_() { ip netns exec "$P-n1" etcdctl --endpoints=http://172.31.0.21:2379,http://172.31.0.22:2379,http://172.31.0.23:2379 "$@"; }
for _ in $(seq 100); do etcdctl_ endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

# The shared document: gen_services.py's config without its [node] section; round R
# changes the first service's port to 1000 + R.
python3 tests/bench/gen_services.py "$SERVICES" | sed '1,3d' >"$WORK/shared.base"
shared() { sed "0,/port = 80,/s//port = $((1000 + $1)),/" "$WORK/shared.base"; }

status() { ip netns exec "$P-n$1" curl -s --max-time 2 http://127.0.0.1:9470/status; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['config'].get('$1') or 0)"; }
now() { date +%s.%N; }

# Polls every node until `$2 N` prints at least the number in ${want[N]}.
wait_all() {
    local deadline=$(($(date +%s) + 30)) n
    for n in $(seq 1 "$NODES"); do
        until [ "$(status "$n" | $1 2>/dev/null || echo 0)" -ge "${want[$n]}" ]; do
            [ "$(date +%s)" -lt "$deadline" ] || { echo "node n$n never applied" >&2; exit 1; }
            sleep 0.01
        done
    done
}

start_nodes() { # $1 = etcd or file
    local n
    for n in $(seq 1 "$NODES"); do
        if [ "$1" = etcd ]; then
            printf '[node]\nname = "node-%s"\n[source]\nkind = "etcd"\nendpoints = [%s]\ncache_dir = "%s"\n' \
                "$n" "$ENDPOINTS" "$WORK/cache$n" >"$WORK/n$n.toml"
        else
            { printf '[node]\nname = "node-%s"\n' "$n"; shared 0; } >"$WORK/n$n.toml"
        fi
        ip netns exec "$P-n$n" "$BIN" run --config "$WORK/n$n.toml" >"$WORK/n$n-$1.log" 2>&1 &
        pids+=($!)
        node_pid[$n]=$!
    done
    for n in $(seq 1 "$NODES"); do
        for _ in $(seq 600); do
            ip netns exec "$P-n$n" curl -sf -o /dev/null http://127.0.0.1:9470/readyz && break
            sleep 0.1
        done
    done
}
stop_nodes() {
    local n
    for n in $(seq 1 "$NODES"); do kill "${node_pid[$n]}" 2>/dev/null || true; wait "${node_pid[$n]}" 2>/dev/null || true; done
}

percentiles() { # stdin: one duration a line -> "median p99" in ms
    sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.99+0.999)]; printf "%.0f %.0f\n", m*1000, p*1000}'
}

declare -A node_pid want
printf '[node]\nname = "node-1"\n[source]\nkind = "etcd"\nendpoints = [%s]\n' "$ENDPOINTS" >"$WORK/pusher.toml"
shared 0 >"$WORK/push.toml"
ip netns exec "$P-n1" "$BIN" config push --config "$WORK/pusher.toml" "$WORK/push.toml" >/dev/null
start_nodes etcd
: >"$WORK/etcd.times"
for r in $(seq 1 "$ROUNDS"); do
    shared "$r" >"$WORK/push.toml"
    t0=$(now)
    revision=$(ip netns exec "$P-n1" "$BIN" config push --config "$WORK/pusher.toml" "$WORK/push.toml" | awk '{print $NF}')
    for n in $(seq 1 "$NODES"); do want[$n]=$revision; done
    wait_all "field revision"
    echo "$(now) - $t0" | bc >>"$WORK/etcd.times"
done
stop_nodes

start_nodes file
: >"$WORK/file.times"
for r in $(seq 1 "$ROUNDS"); do
    for n in $(seq 1 "$NODES"); do want[$n]=$(($(status "$n" | field reloads_ok) + 1)); done
    { printf '[node]\nname = "node-X"\n'; shared "$r"; } >"$WORK/next.toml"
    t0=$(now)
    for n in $(seq 1 "$NODES"); do
        sed "s/node-X/node-$n/" "$WORK/next.toml" >"$WORK/n$n.toml.new" && mv "$WORK/n$n.toml.new" "$WORK/n$n.toml"
    done
    wait_all "field reloads_ok"
    echo "$(now) - $t0" | bc >>"$WORK/file.times"
done
stop_nodes

read -r etcd_median etcd_p99 < <(percentiles <"$WORK/etcd.times")
read -r file_median file_p99 < <(percentiles <"$WORK/file.times")
echo "change -> applied on all $NODES nodes, $SERVICES services, $ROUNDS rounds"
printf '%-6s median %6s ms   p99 %6s ms\n' etcd "$etcd_median" "$etcd_p99" file "$file_median" "$file_p99"
echo "ratio etcd/file: median $(echo "scale=2; $etcd_median / $file_median" | bc), p99 $(echo "scale=2; $etcd_p99 / $file_p99" | bc)"
