#!/usr/bin/env bash
# Membership at fleet scale: K dockline nodes in network namespaces on one bridge, all
# started at once, each joining through one seed with keyed gossip and the default
# profile; then K serf agents (HashiCorp memberlist, keyed) in the same harness, same run.
# Every figure comes from the daemons' own timestamps, not from polling:
#   dockline: its log lines "gossip: membership changed ... live=N at_unix_ms=T" and
#             "l2: VIP taken over/released vip=..." (microsecond timestamps);
#   serf:     its event handler, which stamps each member event as serf delivers it.
# For each K it prints: time to a full view on every node (from the last start), VIPs
# claimed by 2+ nodes and by none at 1, 3 and 10 s (dockline; serf has no VIPs), the time
# for every survivor to see a silent loss (link down + SIGKILL), the time for a node
# joining the settled cluster to be known by all, and per node RSS, CPU and gossip bytes
# per second (the node's whole eth0 traffic, gossip only) over 10 s of steady state.
# Like for like: one thread each (TOKIO_WORKER_THREADS=1, GOMAXPROCS=1), keyed gossip for
# both. Runs as root, asserts nothing. SIZES ("16 32 64") tunes it; KEEP=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"16 32 64"}
VIPS=64
command -v serf >/dev/null || { apt-get update -qq && apt-get install -y -qq serf; }
cargo build --release -q -p dockline
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=$TARGET/release/dockline
WORK=$(mktemp -d /tmp/dockline-bench-membership.XXXXXX)
P=dm-$$
pids=()
hosts=()

# The kernel's ARP cache is one table for every namespace, 1024 entries at most by default:
# 64 nodes that each know the 63 others overflow it ("neighbor table overflow"), and sends
# fail with ENOBUFS for dockline and serf alike. Raised for the run, restored after.
NEIGH=/proc/sys/net/ipv4/neigh/default
saved_thresholds=$(cat $NEIGH/gc_thresh1 $NEIGH/gc_thresh2 $NEIGH/gc_thresh3)
echo 4096 > $NEIGH/gc_thresh1
echo 8192 > $NEIGH/gc_thresh2
echo 16384 > $NEIGH/gc_thresh3

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for h in "${hosts[@]}"; do ip netns del "$P-$h" 2>/dev/null || true; done
    ip netns del "$P-sw" 2>/dev/null || true
    read -r t1 t2 t3 <<<"$(echo $saved_thresholds)"
    echo "$t1" > $NEIGH/gc_thresh1
    echo "$t2" > $NEIGH/gc_thresh2
    echo "$t3" > $NEIGH/gc_thresh3
    [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

ip_of() { echo "172.28.$(($1 / 200)).$(($1 % 200 + 10))"; }
now() { date +%s.%N; }

# Nodes 0..$1 (one more than K, for the joiner) on one bridge.
topology_up() {
    local count=$1
    ip netns add "$P-sw"
    ip -n "$P-sw" link add br0 type bridge mcast_snooping 0
    ip -n "$P-sw" link set br0 up
    hosts=()
    for i in $(seq 0 "$count"); do
        hosts+=("n$i")
        ip netns add "$P-n$i"
        ip -n "$P-n$i" link set lo up
        ip -n "$P-n$i" link add eth0 type veth peer name port$i netns "$P-sw"
        ip -n "$P-sw" link set port$i master br0 up
        ip -n "$P-n$i" addr add "$(ip_of "$i")/16" dev eth0
        ip -n "$P-n$i" link set eth0 up
    done
}
topology_down() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for h in "${hosts[@]}"; do ip netns del "$P-$h" 2>/dev/null || true; done
    ip netns del "$P-sw" 2>/dev/null || true
    hosts=()
}

declare -A pid_of

dockline_config() {
    local i=$1 services=""
    for v in $(seq 0 $((VIPS - 1))); do
        services+="[[services]]
name = \"s$v\"
type = \"LoadBalancer\"
load_balancer_ip = \"198.18.$((v / 200)).$((v % 200 + 10))\"
ports = [{ port = 80 }]
"
    done
    cat <<CONF
[node]
name = "n$i"
internal_ip = "$(ip_of "$i")"
[cluster.gossip]
listen = "$(ip_of "$i"):7946"
seeds = ["$(ip_of 0):7946"]
secret_file = "$WORK/gossip.key"
[dns]
enabled = false
[proxy]
enabled = false
[l2]
interfaces = ["eth0"]
[[pools]]
name = "public"
addresses = ["198.18.0.0/16"]
announce = ["l2"]
$services
CONF
}

start_node() {
    local system=$1 i=$2 dir=$3
    case $system in
    dockline)
        dockline_config "$i" > "$dir/n$i.toml"
        DOCKLINE_LOG=info TOKIO_WORKER_THREADS=1 ip netns exec "$P-n$i" "$BIN" run --config "$dir/n$i.toml" \
            > "$dir/n$i.log" 2>&1 &
        ;;
    serf)
        GOMAXPROCS=1 ip netns exec "$P-n$i" serf agent -node="n$i" -bind="$(ip_of "$i"):7946" \
            -rpc-addr=127.0.0.1:7373 -retry-join="$(ip_of 0):7946" -retry-interval=1s \
            -encrypt="$SERF_KEY" -event-handler="$WORK/serf-event.sh" -log-level=warn \
            > "$dir/n$i.log" 2>&1 &
        ;;
    esac
    pid_of[$i]=$!
    pids+=($!)
}

# Per node: RSS (kB), CPU ticks and eth0 bytes sent, at the start and end of 10 s.
steady_state() {
    local k=$1 dir=$2 i
    declare -A ticks0 tx0
    for i in $(seq 0 "$k"); do
        [ "$i" = "$VICTIM" ] && continue
        ticks0[$i]=$(awk '{print $14 + $15}' "/proc/${pid_of[$i]}/stat")
        tx0[$i]=$(ip netns exec "$P-n$i" cat /sys/class/net/eth0/statistics/tx_bytes)
    done
    sleep 10
    : > "$dir/steady"
    for i in $(seq 0 "$k"); do
        [ "$i" = "$VICTIM" ] && continue
        local ticks tx rss
        ticks=$(awk '{print $14 + $15}' "/proc/${pid_of[$i]}/stat")
        tx=$(ip netns exec "$P-n$i" cat /sys/class/net/eth0/statistics/tx_bytes)
        rss=$(awk '/VmRSS/ {print $2}' "/proc/${pid_of[$i]}/status")
        echo "$rss $((ticks - ticks0[$i])) $((tx - tx0[$i]))" >> "$dir/steady"
    done
}

run() {
    local system=$1 k=$2
    local dir=$WORK/$system-$k
    mkdir -p "$dir/events"
    topology_up "$k"
    for i in $(seq 0 $((k - 1))); do start_node "$system" "$i" "$dir"; done
    now > "$dir/t_started"
    sleep 12
    VICTIM=$((k / 2))
    ip -n "$P-n$VICTIM" link set eth0 down
    kill -9 "${pid_of[$VICTIM]}"
    now > "$dir/t_killed"
    # serf's default suspicion takes several seconds at these sizes.
    sleep 15
    start_node "$system" "$k" "$dir"
    now > "$dir/t_joined"
    sleep 5
    steady_state "$k" "$dir"
    echo "$VICTIM" > "$dir/victim"
    topology_down
}

echo bench-gossip-key > "$WORK/gossip.key"
SERF_KEY=$(head -c 32 /dev/urandom | base64)
cat > "$WORK/serf-event.sh" <<EOF
#!/bin/sh
# One line per event delivery: the time, the event, the members it names.
echo "\$(date +%s.%N) \$SERF_EVENT \$(cut -f1 | tr '\n' ' ')" >> "$WORK/serf-\$SERF_SELF_NAME.events"
EOF
chmod +x "$WORK/serf-event.sh"

for k in $SIZES; do
    echo "== K=$k: dockline" >&2
    run dockline "$k"
    echo "== K=$k: serf" >&2
    mkdir -p "$WORK/serf-$k"
    run serf "$k"
    mv "$WORK"/serf-n*.events "$WORK/serf-$k/" 2>/dev/null || true
done

WORK=$WORK SIZES=$SIZES python3 - <<'PY'
import os, re, glob
from datetime import datetime

work, sizes = os.environ["WORK"], os.environ["SIZES"].split()
tick = os.sysconf("SC_CLK_TCK")

def read(path):
    return float(open(path).read().strip())

def stamp(line):
    # 2026-11-30T17:52:03.010645Z
    text = line.split()[0].rstrip("Z")
    return datetime.fromisoformat(text).timestamp()

def dockline_events(path):
    """(time, live count, names that changed) at each membership change of one node."""
    out = []
    for line in open(path, errors="replace"):
        m = re.search(r"membership changed .*live=(\d+) at_unix_ms=(\d+) changes=(.*)$", line)
        if m:
            names = [c.split()[0] for c in m.group(3).split(", ")]
            out.append((int(m.group(2)) / 1000, int(m.group(1)), names))
    return out

def serf_events(path):
    """(time, live count, names in the event) after each member event an agent delivered."""
    live, out = set(), []
    if not os.path.exists(path):
        return out
    for line in open(path):
        parts = line.split()
        t, event, names = float(parts[0]), parts[1], parts[2:]
        if event == "member-join":
            live |= set(names)
        elif event in ("member-leave", "member-failed", "member-reap"):
            live -= set(names)
        out.append((t, len(live), names))
    return out

def became(series, count, after, before=float("inf")):
    """The last time the live count became `count` in (after, before), if it ended there."""
    at = None
    for t, n, _ in series:
        if not after <= t < before:
            continue
        if n == count and at is None:
            at = t
        elif n != count:
            at = None
    return at

def heard_of(series, name, after):
    """The first time after `after` a change named `name`."""
    return next((t for t, _, names in series if t >= after and name in names), None)

def owners_at(dir, k, t):
    """VIPs owned by 2+ nodes and by none at time t, from takeover/release log lines."""
    owned = {}
    for i in range(k):
        path = f"{dir}/n{i}.log"
        mine = set()
        for line in open(path, errors="replace"):
            m = re.search(r"l2: VIP (taken over|released) vip=(\S+)", line)
            if not m or stamp(line) > t:
                continue
            (mine.add if m.group(1) == "taken over" else mine.discard)(m.group(2))
        for v in mine:
            owned[v] = owned.get(v, 0) + 1
    dual = sum(1 for n in owned.values() if n >= 2)
    return dual, 64 - len(owned)

def fmt(r, key):
    x = r[key]
    return f"> {r[key + '_window']:.0f} s" if x is None else f"{x:.2f} s"

rows = []
for k in map(int, sizes):
    result = {}
    for system in ("dockline", "serf"):
        d = f"{work}/{system}-{k}"
        started, killed, joined = read(f"{d}/t_started"), read(f"{d}/t_killed"), read(f"{d}/t_joined")
        victim = int(open(f"{d}/victim").read())
        if system == "dockline":
            series = {i: dockline_events(f"{d}/n{i}.log") for i in range(k + 1)}
        else:
            series = {i: serf_events(f"{d}/serf-n{i}.events") for i in range(k + 1)}
        full = [became(series[i], k, 0, killed) for i in range(k)]
        survivors = [i for i in range(k) if i != victim]
        loss = [heard_of(series[i], f"n{victim}", killed) for i in survivors]
        join = [heard_of(series[i], f"n{k}", joined) for i in survivors]
        r = {
            "full": None if None in full else max(full) - started,
            "full_window": killed - started,
            "loss": None if None in loss else max(loss) - killed,
            "loss_window": joined - killed,
            "join": None if None in join else max(join) - joined,
            "join_window": 5,
        }
        steady = [list(map(int, l.split())) for l in open(f"{d}/steady")]
        r["rss"] = sum(s[0] for s in steady) / len(steady) / 1024
        r["cpu"] = sum(s[1] for s in steady) / len(steady) / tick / 10 * 100
        r["bytes"] = sum(s[2] for s in steady) / len(steady) / 10
        if system == "dockline":
            r["vips"] = [owners_at(d, k, started + s) for s in (1, 3, 10)]
        result[system] = r
    rows.append((k, result))

print()
print("Membership at scale: one run per size; times from the daemons' own stamps")
print(f"{'K':>3}  {'figure':<34} {'dockline':>12} {'serf':>12}")
for k, r in rows:
    d, s = r["dockline"], r["serf"]
    print(f"{k:>3}  {'full view on every node':<34} {fmt(d, 'full'):>12} {fmt(s, 'full'):>12}")
    for (sec, (dual, none)) in zip((1, 3, 10), d["vips"]):
        print(f"{k:>3}  {f'VIPs with 2+ / no owner at {sec} s':<34} {f'{dual} / {none}':>12} {'-':>12}")
    print(f"{k:>3}  {'silent loss seen by all':<34} {fmt(d, 'loss'):>12} {fmt(s, 'loss'):>12}")
    print(f"{k:>3}  {'join known by all':<34} {fmt(d, 'join'):>12} {fmt(s, 'join'):>12}")
    print(f"{k:>3}  {'RSS per node':<34} {d['rss']:>9.1f} MB {s['rss']:>9.1f} MB")
    print(f"{k:>3}  {'CPU per node (% of a core)':<34} {d['cpu']:>11.2f}% {s['cpu']:>11.2f}%")
    print(f"{k:>3}  {'gossip sent per node':<34} {d['bytes']/1000:>7.2f} KB/s {s['bytes']/1000:>7.2f} KB/s")
PY
