#!/usr/bin/env bash
# Fleet config benchmark: the time from a change to "applied on every node", over etcd and
# over files, in one run on one machine. A 3-member etcd cluster (Debian's etcd-server) and
# NODES dockline nodes (5), each in a network namespace on one bridge, all on one config of
# SERVICES services (10,000, from gen_services.py). Each round changes the config a little
# (one service's port); the round's time runs from the change to the latest of the nodes'
# own "config loaded" log lines for it (the nodes' logs, not polling their APIs, which would
# load them). Modes, one after the other on the same nodes' namespaces:
# - etcd: from the start of `dockline config push` (which validates the document first) to
#   applied everywhere; the push command's own run time is shown too;
# - file + watch (the anchor): the same document written to each node's own file at once
#   (a rename each), picked up by the file watch (which waits 150 ms for writes to settle);
# - file + SIGHUP: the same writes, then SIGHUP to every node.
# Prints median and p99 over ROUNDS (50) rounds (with 50 rounds the p99 is the slowest),
# the nodes' CPU per applied change, the etcd/file ratios, the three slowest rounds of each
# path and the load average; asserts nothing. The goal of issue 17 is an etcd
# p99 under 1 s with 10,000 services. Runs as root.
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

now() { date +%s.%N; }
# Clock ticks per second of /proc/PID/stat's CPU times.
TICKS=$(getconf CLK_TCK)
node_cpu_ticks() { # the CPU the running nodes used so far, in clock ticks
    local n total=0
    for n in $(seq 1 "$NODES"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/${node_pid[$n]}/stat")))
    done
    echo "$total"
}
cpu_per_change() { # ms of the nodes' CPU per node and change since $1 ticks
    echo "scale=1; ($(node_cpu_ticks) - $1) * 1000 / $TICKS / ($ROUNDS * $NODES)" | bc
}
mark_logs() { # the current end of every node's log of mode $1: the next round's start
    local n
    for n in $(seq 1 "$NODES"); do offsets[$n]=$(stat -c %s "$WORK/n$n-$1.log"); done
}
# Waits until every node's log of mode $1 has a "config loaded" line past its offset and
# prints the latest of their timestamps, in seconds since the epoch.
applied_at() {
    python3 - "$WORK" "$1" "${offsets[@]}" <<'PY'
import datetime, sys, time
work, mode, offsets = sys.argv[1], sys.argv[2], [int(o) for o in sys.argv[3:]]
deadline = time.time() + 30
latest = 0.0
for n, offset in enumerate(offsets, 1):
    while True:
        with open(f"{work}/n{n}-{mode}.log", "rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        loaded = [line for line in lines if "config loaded" in line]
        if loaded:
            break
        if time.time() > deadline:
            sys.exit(f"node n{n} never applied the change ({mode})")
        time.sleep(0.005)
    # "2026-11-30T15:45:11.887908Z  INFO ...": the timestamp, UTC.
    stamp = datetime.datetime.strptime(loaded[0].split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    latest = max(latest, stamp.replace(tzinfo=datetime.timezone.utc).timestamp())
print(f"{latest:.6f}")
PY
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

declare -A node_pid cpu_ms
offsets=()
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '[node]\nname = "node-1"\n[source]\nkind = "etcd"\nendpoints = [%s]\n' "$ENDPOINTS" >"$WORK/pusher.toml"
shared 0 >"$WORK/push.toml"
ip netns exec "$P-n1" "$BIN" config push --config "$WORK/pusher.toml" "$WORK/push.toml" >/dev/null
start_nodes etcd
: >"$WORK/etcd.times"
: >"$WORK/push.times"
ticks=$(node_cpu_ticks)
for r in $(seq 1 "$ROUNDS"); do
    shared "$r" >"$WORK/push.toml"
    mark_logs etcd
    t0=$(now)
    ip netns exec "$P-n1" "$BIN" config push --config "$WORK/pusher.toml" "$WORK/push.toml" >/dev/null
    echo "$(now) - $t0" | bc >>"$WORK/push.times"
    echo "$(applied_at etcd) - $t0" | bc >>"$WORK/etcd.times"
    sleep 0.3
done
cpu_ms[etcd]=$(cpu_per_change "$ticks")
stop_nodes

# The file path; $1 = watch (the file watch alone) or sighup (SIGHUP right after the write).
file_rounds() {
    local r n t0
    : >"$WORK/file-$1.times"
    ticks=$(node_cpu_ticks)
    for r in $(seq 1 "$ROUNDS"); do
        { printf '[node]\nname = "node-X"\n'; shared "$r"; } >"$WORK/next.toml"
        mark_logs file
        t0=$(now)
        for n in $(seq 1 "$NODES"); do
            sed "s/node-X/node-$n/" "$WORK/next.toml" >"$WORK/n$n.toml.new" && mv "$WORK/n$n.toml.new" "$WORK/n$n.toml"
        done
        if [ "$1" = sighup ]; then
            for n in $(seq 1 "$NODES"); do kill -HUP "${node_pid[$n]}"; done
        fi
        echo "$(applied_at file) - $t0" | bc >>"$WORK/file-$1.times"
        # The watch's own look at the file after a SIGHUP (a no-op) is over before the next.
        sleep 0.3
    done
    cpu_ms[$1]=$(cpu_per_change "$ticks")
}
start_nodes file
file_rounds watch
file_rounds sighup
stop_nodes

read -r push_median push_p99 < <(percentiles <"$WORK/push.times")
echo "change -> applied on all $NODES nodes (from the nodes' logs), $SERVICES services, $ROUNDS rounds"
printf '%-14s %8s %8s %16s\n' path "median" "p99" "CPU/node/change"
row() { # $1 = label, $2 = times file, $3 = cpu key
    read -r median p99 < <(percentiles <"$2")
    printf '%-14s %5s ms %5s ms %13s ms\n' "$1" "$median" "$p99" "${cpu_ms[$3]}"
    eval "${3}_median=$median ${3}_p99=$p99"
}
row "etcd push" "$WORK/etcd.times" etcd
row "file + watch" "$WORK/file-watch.times" watch
row "file + SIGHUP" "$WORK/file-sighup.times" sighup
echo "of which the push command itself (validate + write): median $push_median ms, p99 $push_p99 ms"
echo "ratio etcd/(file + watch): median $(echo "scale=2; $etcd_median / $watch_median" | bc), p99 $(echo "scale=2; $etcd_p99 / $watch_p99" | bc)"
echo "ratio etcd/(file + SIGHUP): median $(echo "scale=2; $etcd_median / $sighup_median" | bc), p99 $(echo "scale=2; $etcd_p99 / $sighup_p99" | bc)"
slowest() { # $1 = times file -> its three slowest rounds, as "round: ms"
    awk '{printf "%d %.0f\n", NR, $1 * 1000}' "$1" | sort -k2 -n -r | head -3 |
        awk '{printf " #%s: %s ms", $1, $2}'
}
echo "slowest rounds: etcd push$(slowest "$WORK/etcd.times"); push command$(slowest "$WORK/push.times")"
echo "                file + watch$(slowest "$WORK/file-watch.times"); file + SIGHUP$(slowest "$WORK/file-sighup.times")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
