#!/usr/bin/env bash
# DNS benchmark: dockline's responder next to knot (the anchor) on the same data set and the
# same dnsperf query file, in one run: QPS, average and p99 latency, lost queries, server
# CPU time per query and RSS, and the ratio dockline/knot. Prints figures; asserts nothing.
#
# Data set: $HEADLESS headless services x $ENDPOINTS endpoints and $CLUSTERIP ClusterIP
# services, as a dockline config and as a knot zone with answer-rotation on. Both servers run
# in one network namespace of this script on 127.0.0.1. Runs as root.
#
# dnsperf's latency output has no percentiles: p99 comes from a second, shorter run of each
# server with per-query output (-v), so the main figures are not slowed by that output.
set -euo pipefail
cd "$(dirname "$0")/../.."
HEADLESS=${HEADLESS:-1000}
ENDPOINTS=${ENDPOINTS:-8}
CLUSTERIP=${CLUSTERIP:-1000}
SECONDS_RUN=${SECONDS_RUN:-15}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-500}
RATE=${RATE:-50000}

missing=()
command -v knotd >/dev/null || missing+=(knot)
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
# NO_BUILD=1 measures the release binary already built.
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p dockline
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/dockline
WORK=$(mktemp -d /tmp/dockline-bench-dns.XXXXXX)
NS=dl-$$-bench-dns
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

python3 - "$WORK" "$HEADLESS" "$ENDPOINTS" "$CLUSTERIP" <<'PY'
import sys
work, headless, endpoints, clusterip = sys.argv[1], *map(int, sys.argv[2:])
domain = "cluster.local"
conf = ['[node]\nname = "node-1"\ninternal_ip = "127.0.0.1"\n',
        '[admin]\nlisten = "127.0.0.1:9470"\n[proxy]\nenabled = false\n',
        '[dns]\nlisten = ["127.0.0.1:5353"]\nttl = 5\n',
        '[cluster]\nservice_cidr = "10.96.0.0/12"\npod_cidr = "10.64.0.0/11"\n']
zone = [f"$ORIGIN {domain}.\n$TTL 5\n",
        "@ SOA ns.dns hostmaster 1 7200 1800 86400 5\n@ NS ns.dns\nns.dns A 127.0.0.1\n"]
queries = []
for i in range(headless):
    name = f"h{i}"
    conf.append(f'[[services]]\nname = "{name}"\ncluster_ip = "None"\nports = [{{ port = 80 }}]\n')
    for j in range(endpoints):
        ip = f"10.{64 + j}.{i >> 8}.{i & 255}"
        conf.append(f'[[services.endpoints]]\nip = "{ip}"\n')
        zone.append(f"{name}.default.svc A {ip}\n")
    queries.append(f"{name}.default.svc.{domain} A\n")
for i in range(clusterip):
    name = f"c{i}"
    ip = f"10.96.{(i + 1) >> 8}.{(i + 1) & 255}"
    conf.append(f'[[services]]\nname = "{name}"\ncluster_ip = "{ip}"\nports = [{{ port = 80 }}]\n'
                f'[[services.endpoints]]\nip = "10.90.{i >> 8}.{i & 255}"\n')
    zone.append(f"{name}.default.svc A {ip}\n")
    queries.append(f"{name}.default.svc.{domain} A\n")
open(f"{work}/dockline.toml", "w").write("".join(conf))
open(f"{work}/cluster.local.zone", "w").write("".join(zone))
open(f"{work}/queries.txt", "w").write("".join(queries))
PY
"$BIN" check "$WORK/dockline.toml" >/dev/null

cat > "$WORK/knot.conf" <<CONF
server:
    rundir: "$WORK"
    listen: 127.0.0.1@5300
    answer-rotation: on
database:
    storage: "$WORK"
template:
  - id: default
    storage: "$WORK"
zone:
  - domain: cluster.local
    file: cluster.local.zone
CONF

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads/{print $2}' "/proc/$1/status"; }
drops() { ip netns exec "$NS" nstat -az UdpRcvbufErrors | awk '/UdpRcvbufErrors/{print $2}'; }
answered() {
    for _ in $(seq 1 100); do
        [ -n "$(ip netns exec "$NS" dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 c0.default.svc.cluster.local)" ] && return 0
        sleep 0.1
    done
    echo "no answer on port $1" >&2; return 1
}

# Runs dnsperf against port $2 of server pid $3; prints "name qps avg_ms p99_ms lost cpu_us rss_mib".
measure() {
    local name=$1 port=$2 pid=$3
    local cpu0 drops0 out qps avg lost completed cpu1 drops1 p99
    answered "$port"
    cpu0=$(cpu_ticks "$pid"); drops0=$(drops)
    out=$(ip netns exec "$NS" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" \
        -l "$SECONDS_RUN" -c "$CLIENTS" -q "$OUTSTANDING" 2>&1)
    cpu1=$(cpu_ticks "$pid"); drops1=$(drops)
    qps=$(awk '/Queries per second/{print $4}' <<<"$out")
    avg=$(awk '/Average Latency/{printf "%.3f", $4 * 1000}' <<<"$out")
    lost=$(awk '/Queries lost/{print $3}' <<<"$out")
    completed=$(awk '/Queries completed/{print $3}' <<<"$out")
    # p99 from a short per-query run: dnsperf -v prints each latency in seconds.
    p99=$(ip netns exec "$NS" dnsperf -v -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" \
        -l 3 -c "$CLIENTS" -q "$OUTSTANDING" 2>/dev/null |
        awk '$1 == ">" && $NF ~ /^[0-9.]+$/ {print $NF}' | sort -n |
        awk '{v[NR] = $1} END {if (NR) printf "%.3f", v[int(NR * 0.99)] * 1000; else print "n/a"}')
    echo "$name $qps $avg $p99 $lost $(awk -v c=$((cpu1 - cpu0)) -v t="$ticks" -v n="$completed" \
        'BEGIN {printf "%.2f", c / t / n * 1e6}') $(awk -v k="$(rss_kib "$pid")" 'BEGIN {printf "%.1f", k / 1024}') $((drops1 - drops0))"
}

# Latency at one offered load for both (dnsperf -Q): in the closed loop above, a server that
# drops queries works with fewer outstanding ones (each lost query holds a slot until
# dnsperf's timeout), which lowers its latency; at a fixed rate both see the same queue.
# Prints "name avg_ms p99_ms".
latency_at_rate() {
    local name=$1 port=$2
    ip netns exec "$NS" dnsperf -v -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" \
        -l 5 -c "$CLIENTS" -Q "$RATE" 2>/dev/null |
        awk '$1 == ">" && $NF ~ /^[0-9.]+$/ {print $NF}' | sort -n |
        awk -v n="$name" '{v[NR] = $1; s += $1}
            END {if (NR) printf "%s %.3f %.3f\n", n, s / NR * 1000, v[int(NR * 0.99)] * 1000}'
}

ip netns exec "$NS" knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
knot_pid=$!; pids+=("$knot_pid")
ip netns exec "$NS" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 &
dockline_pid=$!; pids+=("$dockline_pid")

echo "data set: $HEADLESS headless x $ENDPOINTS endpoints + $CLUSTERIP ClusterIP services;" \
    "dnsperf -l $SECONDS_RUN -c $CLIENTS -q $OUTSTANDING, $(nproc) cores"
answered 5300 && answered 5353
# Both on their defaults: knot's UDP workers and dockline's runtime workers are one per
# core; both have a few more threads besides (knot's TCP workers, for one).
echo "threads in all: knot $(threads "$knot_pid"), dockline $(threads "$dockline_pid")"
# Alternated, twice each: the machine may be busy with other work, and alternating spreads
# that over both servers.
rows=()
for round in 1 2; do
    rows+=("$(measure knot 5300 "$knot_pid")")
    rows+=("$(measure dockline 5353 "$dockline_pid")")
done
printf '%-9s %10s %9s %9s %7s %13s %8s %12s\n' server QPS avg_ms p99_ms lost cpu_us/query RSS_MiB rcvbuf_drops
for line in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-9s %10.0f %9s %9s %7s %13s %8s %12s\n' $line
done
printf '\nlatency at a fixed %s QPS offered to each:\n%-9s %9s %9s\n' "$RATE" server avg_ms p99_ms
for server in "knot 5300" "dockline 5353"; do
    # shellcheck disable=SC2086
    printf '%-9s %9s %9s\n' $(latency_at_rate $server)
done
printf '%s\n' "${rows[@]}" | awk '
    {qps[$1] += $2; cpu[$1] += $6; n[$1]++}
    END {
        printf "mean QPS: knot %.0f, dockline %.0f; ratio dockline/knot %.2f\n",
            qps["knot"] / n["knot"], qps["dockline"] / n["dockline"], qps["dockline"] / qps["knot"]
        printf "mean CPU per query: knot %.2f us, dockline %.2f us; ratio %.2f\n",
            cpu["knot"] / n["knot"], cpu["dockline"] / n["dockline"], cpu["dockline"] / cpu["knot"]
    }'
