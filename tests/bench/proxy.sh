#!/usr/bin/env bash
# L4 proxy benchmark: dockline's proxy and HAProxy (mode tcp, splice on; the anchor) side by
# side in one run, in front of the same nginx and iperf3 backends, with as many threads each:
# dockline's runtime gets $DOCKLINE_WORKERS workers, HAProxy `nbthread $HAPROXY_THREADS`
# (both $THREADS, the number of cores, unless set). Figures: wrk requests/s with keep-alive
# and with `Connection: close` (connection rate), wrk's transfer rate on a 1 MiB file, iperf3
# TCP throughput; and for each, the CPU time each proxy spent on it (utime + stime from
# /proc/PID/stat around the run) per request or per GiB, the figure that does not depend on
# what else runs on the machine. $RUNS rounds, each proxy's turn alternating first; prints
# every round and the medians with ratios (dockline / HAProxy), then where the CPU goes:
# dockline's user and kernel time per unit, the whole machine's busy time per unit during
# each proxy's runs, and the ceiling (the rate ratio with dockline's user time at zero);
# asserts nothing. Runs as
# root, everything inside network namespaces this script creates:
# client -- node (dockline, HAProxy) -- backend.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
DOCKLINE_WORKERS=${DOCKLINE_WORKERS:-$THREADS}
HAPROXY_THREADS=${HAPROXY_THREADS:-$THREADS}
need=()
for p in haproxy:haproxy wrk:wrk iperf3:iperf3 nginx:nginx; do
    command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# NO_BUILD=1 measures the release binary already built; DOCKLINE_BIN=path another one.
[ -n "${NO_BUILD:-}" ] || [ -n "${DOCKLINE_BIN:-}" ] || cargo build --release -q -p dockline
BIN=${DOCKLINE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/dockline}
WORK=$(mktemp -d /tmp/dockline-bench-proxy.XXXXXX)
chmod 755 "$WORK"
P=dl-$$-bench
CLIENT=$P-client NODE=$P-node BACKEND=$P-backend
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # Whatever still runs inside (nginx workers outlive a killed master) goes first.
    for ns in "$CLIENT" "$NODE" "$BACKEND"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in "$CLIENT" "$NODE" "$BACKEND"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$CLIENT" link add eth0 type veth peer name eth0 netns "$NODE"
ip -n "$NODE" link add eth1 type veth peer name eth0 netns "$BACKEND"
ip -n "$CLIENT" addr add 172.30.0.100/24 dev eth0
ip -n "$NODE" addr add 172.30.0.11/24 dev eth0
ip -n "$NODE" addr add 172.31.0.11/24 dev eth1
ip -n "$BACKEND" addr add 172.31.0.21/24 dev eth0
for l in "$CLIENT eth0" "$NODE eth0" "$NODE eth1" "$BACKEND eth0"; do
    set -- $l; ip -n "$1" link set "$2" up
done
ip -n "$CLIENT" route add 10.222.0.0/16 via 172.30.0.11
ip -n "$BACKEND" route add 172.30.0.0/24 via 172.31.0.11

# Backends: nginx (2 workers) with a 1 MiB file, and iperf3.
mkdir -p "$WORK/www"
echo ok > "$WORK/www/index.html"
head -c 1048576 /dev/zero > "$WORK/www/1m"
cat > "$WORK/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
    server { listen 172.31.0.21:8080 backlog=4096; root $WORK/www; }
}
CONF
ip netns exec "$BACKEND" nginx -e "$WORK/nginx.err" -c "$WORK/nginx.conf" &
pids+=($!)
ip netns exec "$BACKEND" iperf3 -s -B 172.31.0.21 -p 5201 >/dev/null 2>&1 &
pids+=($!)

# The anchor: HAProxy on the node's own address.
cat > "$WORK/haproxy.cfg" <<CONF
global
    nbthread $HAPROXY_THREADS
    # Two descriptors per connection must fit the descriptor limit (often 20000 here).
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    option splice-request
    option splice-response
listen web
    bind 172.30.0.11:8081 backlog 4096
    server b1 172.31.0.21:8080
listen iperf
    bind 172.30.0.11:5202
    server b1 172.31.0.21:5201
CONF
ip netns exec "$NODE" haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
haproxy_pid=$!; pids+=("$haproxy_pid")
sleep 0.5
kill -0 "$haproxy_pid" 2>/dev/null || { cat "$WORK/haproxy.log" >&2; exit 1; }

# dockline: two ClusterIP services to the same backends.
cat > "$WORK/dockline.toml" <<CONF
[node]
name = "node-1"
internal_ip = "172.30.0.11"
[dns]
enabled = false
[[services]]
name = "web"
cluster_ip = "10.222.0.10"
ports = [{ port = 80, target_port = 8080 }]
endpoints = [{ ip = "172.31.0.21" }]
[[services]]
name = "iperf"
cluster_ip = "10.222.0.11"
ports = [{ port = 5201 }]
endpoints = [{ ip = "172.31.0.21" }]
CONF
# tokio sizes its runtime from TOKIO_WORKER_THREADS when the daemon does not.
ip netns exec "$NODE" env TOKIO_WORKER_THREADS="$DOCKLINE_WORKERS" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 &
dockline_pid=$!; pids+=("$dockline_pid")
for _ in $(seq 1 100); do
    ip netns exec "$NODE" curl -sf http://127.0.0.1:9470/readyz >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 0.5

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
# Busy ticks of the whole machine (every process, the kernel's softirq work included).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
threads() { awk '/^Threads/{print $2}' "/proc/$1/status"; }
# A size as wrk prints it ("1.23GB") in bytes.
bytes() {
    awk -v s="$1" 'BEGIN { v = s; u = s; sub(/[A-Za-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
        f = (u == "GB") ? 2^30 : (u == "MB") ? 2^20 : (u == "KB") ? 2^10 : 1; printf "%.0f", v * f }'
}

# One figure against one proxy (pid $2), from the client: prints the figure and the proxy's
# CPU time per unit of work ("requests/s us/request", or "MiB/s ms/GiB", or
# "Gbit/s ms/GiB"), then the proxy's kernel time and the whole machine's busy time per
# unit, in the same unit.
measure() {
    local kind=$1 pid=$2 url=$3 cpu0 cpu1 out cpu_s sys0 machine0 sys_s machine_s
    cpu0=$(cpu_ticks "$pid") sys0=$(sys_ticks "$pid") machine0=$(machine_ticks)
    case $kind in
        keepalive) out=$(ip netns exec "$CLIENT" wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url/") ;;
        close) out=$(ip netns exec "$CLIENT" wrk -t2 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "$url/") ;;
        mib) out=$(ip netns exec "$CLIENT" wrk -t2 -c16 -d"${DURATION}s" "$url/1m") ;;
        iperf) out=$(ip netns exec "$CLIENT" iperf3 -c "${url%:*}" -p "${url##*:}" -t "$DURATION" -J) ;;
    esac
    cpu1=$(cpu_ticks "$pid")
    cpu_s=$(awk -v c=$((cpu1 - cpu0)) -v t="$ticks" 'BEGIN {print c / t}')
    sys_s=$(awk -v c=$(($(sys_ticks "$pid") - sys0)) -v t="$ticks" 'BEGIN {print c / t}')
    machine_s=$(awk -v c=$(($(machine_ticks) - machine0)) -v t="$ticks" 'BEGIN {print c / t}')
    case $kind in
        keepalive | close)
            awk -v cpu="$cpu_s" -v sys="$sys_s" -v all="$machine_s" \
                '/^Requests\/sec/ {rps = $2} / requests in / {n = $1}
                END {printf "%.0f %.2f %.2f %.2f %.2f\n", rps, cpu / n * 1e6, sys / n * 1e6, all / n * 1e6, all / '"$DURATION"'}' <<<"$out" ;;
        mib)
            local read
            read=$(bytes "$(awk '/ requests in / {print $NF == "read" ? $(NF-1) : $NF}' <<<"$out")")
            awk -v cpu="$cpu_s" -v sys="$sys_s" -v all="$machine_s" -v b="$read" -v d="$DURATION" \
                'BEGIN {g = b / 2^30; printf "%.0f %.1f %.1f %.1f %.2f\n", b / 2^20 / d, cpu * 1000 / g, sys * 1000 / g, all * 1000 / g, all / d}' ;;
        iperf)
            python3 -c 'import json, sys
r = json.load(sys.stdin)["end"]["sum_received"]
g = r["bytes"] / 2**30
cpu, sys_, all_ = (float(a) * 1000 / g for a in sys.argv[1:4])
busy = float(sys.argv[3]) / float(sys.argv[4])
print("%.2f %.1f %.1f %.1f %.2f" % (r["bits_per_second"] / 1e9, cpu, sys_, all_, busy))' "$cpu_s" "$sys_s" "$machine_s" "$DURATION" <<<"$out" ;;
    esac
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

D=10.222.0.10 H=172.30.0.11:8081
declare -A url=(
    [dockline keepalive]=http://$D [haproxy keepalive]=http://$H
    [dockline close]=http://$D [haproxy close]=http://$H
    [dockline mib]=http://$D [haproxy mib]=http://$H
    [dockline iperf]=10.222.0.11:5201 [haproxy iperf]=172.30.0.11:5202
)
declare -A pid=([dockline]=$dockline_pid [haproxy]=$haproxy_pid)
figures=(keepalive close mib iperf)
declare -A label=(
    [keepalive]="req/s keep-alive" [close]="req/s Connection: close"
    [mib]="1 MiB transfer MiB/s" [iperf]="iperf3 Gbit/s"
)
declare -A unit=([keepalive]="us/req" [close]="us/req" [mib]="ms/GiB" [iperf]="ms/GiB")
declare -A value cpu kernel machine busy

printf '\n== L4 proxy: dockline (%s runtime workers; %s threads in all) vs HAProxy (nbthread %s; %s threads in all)\n' \
    "$DOCKLINE_WORKERS" "$(threads "$dockline_pid")" "$HAPROXY_THREADS" "$(threads "$haproxy_pid")"
printf '   mode tcp, splice; %s rounds of %ss each, %s conns; %s cores; load before: %s\n' \
    "$RUNS" "$DURATION" "$CONNS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-26s %10s %10s %10s %10s %7s\n' round figure dockline haproxy "CPU dl" "CPU hap" unit
for round in $(seq 1 "$RUNS"); do
    # Whoever went first in the last round goes second in this one.
    order=(dockline haproxy)
    [ $((round % 2)) -eq 0 ] && order=(haproxy dockline)
    for figure in "${figures[@]}"; do
        for proxy in "${order[@]}"; do
            read -r v c k m b < <(measure "$figure" "${pid[$proxy]}" "${url[$proxy $figure]}")
            busy[$proxy $figure $round]=$b
            value[$proxy $figure $round]=$v
            cpu[$proxy $figure $round]=$c
            kernel[$proxy $figure $round]=$k
            machine[$proxy $figure $round]=$m
        done
        printf '%-5s %-26s %10s %10s %10s %10s %7s\n' "$round" "${label[$figure]}" \
            "${value[dockline $figure $round]}" "${value[haproxy $figure $round]}" \
            "${cpu[dockline $figure $round]}" "${cpu[haproxy $figure $round]}" "${unit[$figure]}"
    done
done
rss=$(awk '/^VmRSS/{print $2}' "/proc/$dockline_pid/status")
h_rss=$(awk '/^VmRSS/{print $2}' "/proc/$haproxy_pid/status")

printf '\n== medians of %s rounds (ratio = dockline / HAProxy; above 1 is better for rates, below 1 for CPU); load after: %s\n' \
    "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %10s %10s %6s   %10s %10s %6s %7s\n' figure dockline haproxy ratio "CPU dl" "CPU hap" ratio unit
for figure in "${figures[@]}"; do
    for proxy in dockline haproxy; do
        vs=() cs=()
        for round in $(seq 1 "$RUNS"); do
            vs+=("${value[$proxy $figure $round]}")
            cs+=("${cpu[$proxy $figure $round]}")
        done
        value[$proxy $figure]=$(median "${vs[@]}")
        cpu[$proxy $figure]=$(median "${cs[@]}")
    done
    d=${value[dockline $figure]} h=${value[haproxy $figure]}
    dc=${cpu[dockline $figure]} hc=${cpu[haproxy $figure]}
    printf '%-26s %10s %10s %6s   %10s %10s %6s %7s\n' "${label[$figure]}" "$d" "$h" "$(ratio "$d" "$h")" \
        "$dc" "$hc" "$(ratio "$dc" "$hc")" "${unit[$figure]}"
done
printf '%-26s %10s %10s\n' "RSS KiB" "$rss" "$h_rss"

# Where the time goes: on a machine that the client and the backend share with the proxy,
# a rate is about (busy cores) / (the whole machine's CPU per unit); busy is the cores the
# machine kept busy during the run (2 = saturated). The ceiling is the rate
# ratio dockline would reach if its own user-space time were zero and everything else
# (its kernel time, the client's, the backend's) stayed as measured.
printf '\n== CPU per unit, medians (machine = every process and the kernel while that proxy ran)\n'
printf '%-26s %9s %9s %9s %10s %11s %7s %7s %7s\n' figure "dl user" "dl kernel" "hap all" "machine dl" "machine hap" "busy dl" "busy hap" ceiling
for figure in "${figures[@]}"; do
    for proxy in dockline haproxy; do
        ks=() ms=() bs=()
        for round in $(seq 1 "$RUNS"); do
            ks+=("${kernel[$proxy $figure $round]}")
            ms+=("${machine[$proxy $figure $round]}")
            bs+=("${busy[$proxy $figure $round]}")
        done
        kernel[$proxy $figure]=$(median "${ks[@]}")
        machine[$proxy $figure]=$(median "${ms[@]}")
        busy[$proxy $figure]=$(median "${bs[@]}")
    done
    dk=${kernel[dockline $figure]} dm=${machine[dockline $figure]} hm=${machine[haproxy $figure]}
    du=$(python3 -c "print('%.2f' % (${cpu[dockline $figure]} - $dk))")
    printf '%-26s %9s %9s %9s %10s %11s %7s %7s %7s\n' "${label[$figure]}" "$du" "$dk" \
        "${cpu[haproxy $figure]}" "$dm" "$hm" "${busy[dockline $figure]}" "${busy[haproxy $figure]}" \
        "$(python3 -c "print('%.2f' % ($hm / ($dm - $du)))")"
done
