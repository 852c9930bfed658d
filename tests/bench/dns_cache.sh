#!/usr/bin/env bash
# DNS cache benchmark: dockline's cache of forwarded answers next to dnsdist (its packet
# cache) and unbound (forwarding, its cache), all three in front of the same knot, in one run
# on the same machine. Prints figures and ratios; asserts nothing.
#
# Per round (every server started afresh): a cold pass (each of $NAMES names asked once,
# every query a miss relayed to knot), then a warm run (dnsperf over the same names for
# $SECONDS_RUN s, all hits). Figures: QPS, lost queries, the server's CPU time per query;
# the median of $ROUNDS rounds. Last, each server is asked $ENTRIES names once and its RSS
# read (dockline's /status cache size too). One worker thread each: dockline's UDP
# thread count on 2 cores, dnsdist's one listener, unbound num-threads 1. Runs as root.
set -euo pipefail
: "${NAMES:=10000}" "${ENTRIES:=100000}" "${SECONDS_RUN:=10}" "${ROUNDS:=3}"
: "${CLIENTS:=8}" "${OUTSTANDING:=500}"
repo=$(cd "$(dirname "$0")/../.." && pwd)

# command:package for each program this runs that may be missing.
wanted=(knotd:knot dnsperf:dnsperf dnsdist:dnsdist unbound:unbound)
absent=$(for w in "${wanted[@]}"; do command -v "${w%%:*}" >/dev/null || echo "${w#*:}"; done)
[ -z "$absent" ] || { apt-get update -qq; apt-get install -y -qq $absent; }
# NO_BUILD=1 measures the release binary already built.
[ -n "${NO_BUILD:-}" ] || (cd "$repo" && cargo build --release -q -p dockline)
BIN=${CARGO_TARGET_DIR:-$repo/target}/release/dockline

# Everything runs in a namespace of its own and goes with it at exit.
WORK=$(mktemp -d /tmp/dockline-bench-dns-cache.XXXXXX)
NS=dl-$$-bench-dns-cache
declare -A pid=()
finish() {
    kill -9 "${pid[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap finish EXIT
ip netns add "$NS" && ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

# The upstream's zone: $ENTRIES names under example.test, TTL 3600 (no expiry during a run).
{
    printf '$ORIGIN example.test.\n$TTL 3600\n@ SOA ns admin 1 3600 900 604800 300\n@ NS ns\nns A 127.0.0.1\n'
    awk -v n="$ENTRIES" 'BEGIN {for (i = 0; i < n; i++) printf "n%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256}'
} >"$WORK/example.test.zone"
awk -v n="$NAMES" 'BEGIN {for (i = 0; i < n; i++) printf "n%d.example.test A\n", i}' >"$WORK/names.txt"
awk -v n="$ENTRIES" 'BEGIN {for (i = 0; i < n; i++) printf "n%d.example.test A\n", i}' >"$WORK/entries.txt"

cat >"$WORK/knot.conf" <<CONF
server:
    rundir: "$WORK"
    listen: 127.0.0.1@5300
database:
    storage: "$WORK"
zone:
  - domain: example.test
    file: "$WORK/example.test.zone"
CONF
cat >"$WORK/dockline.toml" <<CONF
[node]
name = "node-1"
internal_ip = "127.0.0.1"
[admin]
listen = "127.0.0.1:9470"
[proxy]
enabled = false
[dns]
listen = ["127.0.0.1:5353"]
forward = ["127.0.0.1:5300"]
[dns.cache]
max_entries = $ENTRIES
CONF
"$BIN" check "$WORK/dockline.toml" >/dev/null
cat >"$WORK/dnsdist.conf" <<CONF
setLocal("127.0.0.1:5354")
setSecurityPollSuffix("")
newServer({address = "127.0.0.1:5300", checkName = "ns.example.test."})
getPool(""):setCache(newPacketCache($ENTRIES, {maxTTL = 86400}))
CONF
cat >"$WORK/unbound.conf" <<CONF
server:
    interface: 127.0.0.1@5355
    port: 5355
    num-threads: 1
    so-rcvbuf: 8m
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    local-zone: "test." nodefault
    domain-insecure: "test."
    module-config: "iterator"
    msg-cache-size: 128m
    rrset-cache-size: 256m
    chroot: ""
    username: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    prefetch: no
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@5300
CONF

declare -A port=([dockline]=5353 [dnsdist]=5354 [unbound]=5355)
read -r -a SERVERS <<<"${SERVERS:-dockline dnsdist unbound}"
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/{printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
wait_answer() {
    for _ in $(seq 1 100); do
        [ -n "$(in_ns dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 "$2" A)" ] && return 0
        sleep 0.1
    done
    echo "no answer on port $1" >&2
    return 1
}

# Starts server $1 (in the namespace, foreground) and waits until it answers from knot.
start() {
    # ip netns exec execs the server: $! is the server's own pid.
    local run=(ip netns exec "$NS")
    case $1 in
    knot) "${run[@]}" knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 & ;;
    dockline) "${run[@]}" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 & ;;
    dnsdist) "${run[@]}" dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" >"$WORK/dnsdist.log" 2>&1 & ;;
    unbound) "${run[@]}" unbound -d -c "$WORK/unbound.conf" >"$WORK/unbound.log" 2>&1 & ;;
    esac
    pid[$1]=$!
    local p=${port[$1]:-5300}
    # A name outside the measured ones, so every measured name starts cold.
    wait_answer "$p" ns.example.test
}
stop() {
    kill -9 "${pid[$1]}" 2>/dev/null || true
    wait "${pid[$1]}" 2>/dev/null || true
    unset "pid[$1]"
}

# dnsperf at server $1 with extra arguments; prints "qps lost cpu_us_per_query".
measure() {
    local server=$1 before out completed after
    shift
    before=$(cpu_ticks "${pid[$server]}")
    out=$(in_ns dnsperf -s 127.0.0.1 -p "${port[$server]}" -c "$CLIENTS" -q "$OUTSTANDING" "$@" 2>&1)
    after=$(cpu_ticks "${pid[$server]}")
    completed=$(awk '/Queries completed/{print $3}' <<<"$out")
    awk -v qps="$(awk '/Queries per second/{print $4}' <<<"$out")" \
        -v lost="$(awk '/Queries lost/{print $3}' <<<"$out")" \
        -v c=$((after - before)) -v t="$ticks" -v n="$completed" \
        'BEGIN {printf "%.0f %s %.2f\n", qps, lost, (n ? c / t / n * 1e6 : 0)}'
}

# The median of the figures kept in associative array $1 for server $2.
median() {
    local -n kept=$1
    tr ' ' '\n' <<<"${kept[$2]}" | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

start knot
echo "knot with $ENTRIES names; $NAMES names measured; dnsperf -c $CLIENTS -q $OUTSTANDING;" \
    "$ROUNDS rounds; $(nproc) cores"
declare -A cold_qps cold_cpu warm_qps warm_cpu warm_lost
for round in $(seq 1 "$ROUNDS"); do
    for server in "${SERVERS[@]}"; do
        start "$server"
        read -r qps lost cpu < <(measure "$server" -d "$WORK/names.txt" -n 1)
        cold_qps[$server]+="$qps "; cold_cpu[$server]+="$cpu "
        echo "round $round $server cold: $qps QPS, $lost lost, $cpu us CPU/query"
        read -r qps lost cpu < <(measure "$server" -d "$WORK/names.txt" -l "$SECONDS_RUN")
        warm_qps[$server]+="$qps "; warm_cpu[$server]+="$cpu "; warm_lost[$server]+="$lost "
        echo "round $round $server warm: $qps QPS, $lost lost, $cpu us CPU/query"
        [ "$round" = "$ROUNDS" ] || stop "$server"
    done
done

echo
printf '%-9s %10s %12s %10s %12s %s\n' server cold_QPS cold_us/q warm_QPS warm_us/q "warm lost (per round)"
declare -A mid
for server in "${SERVERS[@]}"; do
    for figure in cold_qps cold_cpu warm_qps warm_cpu; do
        mid[$server.$figure]=$(median "$figure" "$server")
    done
    printf '%-9s %10s %12s %10s %12s %s\n' "$server" "${mid[$server.cold_qps]}" \
        "${mid[$server.cold_cpu]}" "${mid[$server.warm_qps]}" "${mid[$server.warm_cpu]}" \
        "${warm_lost[$server]}"
done
for anchor in "${SERVERS[@]:1}"; do
    awk -v a="$anchor" -v wq="${mid[dockline.warm_qps]}" -v aq="${mid[$anchor.warm_qps]}" \
        -v wc="${mid[dockline.warm_cpu]}" -v ac="${mid[$anchor.warm_cpu]}" \
        -v cq="${mid[dockline.cold_qps]}" -v acq="${mid[$anchor.cold_qps]}" \
        'BEGIN {printf "dockline/%s: warm QPS x%.2f, warm CPU/query x%.2f, cold QPS x%.2f\n", a, wq / aq, wc / ac, cq / acq}'
done

echo
echo "memory with $ENTRIES names cached (each asked once):"
for server in "${SERVERS[@]}"; do
    measure "$server" -d "$WORK/entries.txt" -n 1 >/dev/null
    echo "$server: RSS $(rss_mib "${pid[$server]}") MiB"
done
echo "dockline /status: $(in_ns curl -s http://127.0.0.1:9470/status | grep -o '"cache_[a-z]*":[0-9]*' | tr '\n' ' ')"
in_ns curl -s http://127.0.0.1:9470/metrics | grep -E '^dockline_dns_(cache|forward)' || true
