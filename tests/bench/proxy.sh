#!/usr/bin/env bash
# L4 proxy benchmark: dockline's proxy and HAProxy (mode tcp, nbthread 1, splice on; the
# anchor) side by side in one run, in front of the same nginx and iperf3 backends:
# wrk requests/s with keep-alive and with `Connection: close` (connection rate), wrk's
# transfer rate on a 1 MiB file, iperf3 TCP throughput, and dockline's RSS. Prints figures
# and ratios (dockline / HAProxy); asserts nothing. Runs as root, everything inside network
# namespaces this script creates: client -- node (dockline, HAProxy) -- backend.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
need=()
for p in haproxy:haproxy wrk:wrk iperf3:iperf3 nginx:nginx; do
    command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# NO_BUILD=1 measures the release binary already built.
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p dockline
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/dockline
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
    nbthread 1
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
ip netns exec "$NODE" "$BIN" run --config "$WORK/dockline.toml" >"$WORK/dockline.log" 2>&1 &
dockline_pid=$!; pids+=("$dockline_pid")
for _ in $(seq 1 100); do
    ip netns exec "$NODE" curl -sf http://127.0.0.1:9470/readyz >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 0.5

# wrk's requests/s, or its transfer rate in MiB/s.
wrk_rps() { ip netns exec "$CLIENT" wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@" | awk '/^Requests\/sec/{print $2}'; }
wrk_mib() {
    ip netns exec "$CLIENT" wrk -t2 -c16 -d"${DURATION}s" "$@" | awk '/^Transfer\/sec/{
        v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[A-Za-z]+/,"",v);
        f = (u=="GB") ? 1024 : (u=="MB") ? 1 : (u=="KB") ? 1/1024 : 1/1048576; printf "%.0f", v*f }'
}
iperf_gbit() {
    ip netns exec "$CLIENT" iperf3 -c "$1" -p "$2" -t "$DURATION" -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

D=http://10.222.0.10 H=http://172.30.0.11:8081
d_ka=$(wrk_rps "$D/");                           h_ka=$(wrk_rps "$H/")
d_cc=$(wrk_rps -H 'Connection: close' "$D/");    h_cc=$(wrk_rps -H 'Connection: close' "$H/")
d_mb=$(wrk_mib "$D/1m");                          h_mb=$(wrk_mib "$H/1m")
d_ip=$(iperf_gbit 10.222.0.11 5201);              h_ip=$(iperf_gbit 172.30.0.11 5202)
rss=$(awk '/^VmRSS/{print $2}' "/proc/$dockline_pid/status")
h_rss=$(awk '/^VmRSS/{print $2}' "/proc/$haproxy_pid/status")

printf '\n== L4 proxy: dockline vs HAProxy (mode tcp, nbthread 1, splice), %ss each, %s conns\n' "$DURATION" "$CONNS"
printf '%-28s %12s %12s %8s\n' figure dockline haproxy ratio
printf '%-28s %12s %12s %8s\n' "req/s keep-alive" "$d_ka" "$h_ka" "$(ratio "$d_ka" "$h_ka")"
printf '%-28s %12s %12s %8s\n' "req/s Connection: close" "$d_cc" "$h_cc" "$(ratio "$d_cc" "$h_cc")"
printf '%-28s %12s %12s %8s\n' "1 MiB transfer MiB/s" "$d_mb" "$h_mb" "$(ratio "$d_mb" "$h_mb")"
printf '%-28s %12s %12s %8s\n' "iperf3 Gbit/s" "$d_ip" "$h_ip" "$(ratio "$d_ip" "$h_ip")"
printf '%-28s %12s %12s\n' "RSS KiB" "$rss" "$h_rss"
