#!/usr/bin/env bash
# Proves the compose lab end to end: installs Docker and docker-compose when missing,
# starts dockerd when none answers, builds the images (the node image from the release
# binary made on this host, never compiled in Docker), brings the lab up, plugs the pods
# into their nodes, checks every capability from the client and the router, prints a table
# (check, expected, seen, ok) and tears the lab down, also on failure or Ctrl-C.
#
# Exit 0 when every check passes, 1 when one fails. Where no Docker engine can be started
# it says SKIP and exits 0: it never reports checks it did not run.
#
# Environment:
#   DOCKLINE_BINARY        the dockline binary for the node image
#                          (default: $CARGO_TARGET_DIR/release/dockline, built if missing)
#   DOCKLINE_LAB_RESULTS   where the table, the node logs and the status page's screenshot
#                          go (default: $CARGO_TARGET_DIR/lab)
#   DOCKLINE_LAB_KEEP=1    leave the lab running at the end, to look at it
#
# It touches only its own compose project: containers dockline-lab-*, networks
# dockline-lab-a/-b (bridges dl-lab-a/-b), images dockline-lab-*.
set -uo pipefail
cd "$(dirname "$0")/../.."

PROJECT=dockline-lab
target=${CARGO_TARGET_DIR:-target}
BINARY=${DOCKLINE_BINARY:-$target/release/dockline}
RESULTS=${DOCKLINE_LAB_RESULTS:-$target/lab}
NODES=(node1 node2 node3)
declare -A NODE_IP=([node1]=172.30.0.11 [node2]=172.30.0.12 [node3]=172.30.1.13)
L2_VIP=172.30.0.100
BGP_VIP=203.0.113.10
# A second address put on node1's LAN interface: the NodePort must not answer on it.
NODE1_OTHER_IP=172.30.0.21

say() { echo "lab: $*"; }
skip() {
    say "SKIP: $*"
    exit 0
}

if [ "$(id -u)" != 0 ]; then
    skip "needs root (it installs packages, starts dockerd and wires pods with nsenter)"
fi

# --- Docker -------------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null ||
        skip "could not install ${missing[*]} with apt-get"
fi

started_dockerd=
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd"
    dockerd >/tmp/dockline-lab-dockerd.log 2>&1 &
    started_dockerd=$!
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$started_dockerd" 2>/dev/null || break
        sleep 0.2
    done
    if ! docker info >/dev/null 2>&1; then
        kill "$started_dockerd" 2>/dev/null
        skip "no Docker engine could be started here; dockerd said: $(tail -n 3 /tmp/dockline-lab-dockerd.log | tr '\n' ' ')"
    fi
fi
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f docker/lab/compose.yml "$@"; }

# --- the table ----------------------------------------------------------------------
CHECKS=() EXPECTED=() SEEN=() OKS=()
check() { # name expected seen ok(0|1); `seen` is cut to 70 characters for the table
    local seen=$3
    [ ${#seen} -gt 70 ] && seen="${seen:0:67}..."
    CHECKS+=("$1") EXPECTED+=("$2") SEEN+=("$seen")
    if [ "$4" = 0 ]; then OKS+=(yes); else OKS+=(NO); fi
    printf 'lab: %-36s %s\n' "$1" "$([ "$4" = 0 ] && echo ok || echo "FAILED: $3")"
}
print_table() {
    local i failed=0 width=(5 8 4)
    for i in "${!OKS[@]}"; do
        [ "${OKS[$i]}" = yes ] || failed=$((failed + 1))
    done
    for i in "${!CHECKS[@]}"; do
        [ ${#CHECKS[$i]} -gt "${width[0]}" ] && width[0]=${#CHECKS[$i]}
        [ ${#EXPECTED[$i]} -gt "${width[1]}" ] && width[1]=${#EXPECTED[$i]}
        [ ${#SEEN[$i]} -gt "${width[2]}" ] && width[2]=${#SEEN[$i]}
    done
    {
        printf "%-${width[0]}s | %-${width[1]}s | %-${width[2]}s | ok\n" check expected seen
        printf "%s\n" "$(printf '%*s' $((width[0] + width[1] + width[2] + 13)) '' | tr ' ' -)"
        for i in "${!CHECKS[@]}"; do
            printf "%-${width[0]}s | %-${width[1]}s | %-${width[2]}s | %s\n" \
                "${CHECKS[$i]}" "${EXPECTED[$i]}" "${SEEN[$i]}" "${OKS[$i]}"
        done
    } | tee "$RESULTS/table.txt"
    echo "lab: $((${#CHECKS[@]} - failed)) passed, $failed failed"
    return $((failed > 0))
}

# --- bring-up and teardown ----------------------------------------------------------
mkdir -p "$RESULTS"
RESULTS=$(realpath "$RESULTS")
rm -f "$RESULTS"/*.log "$RESULTS"/table.txt "$RESULTS"/status-page.*
run_dir=$(mktemp -d /tmp/dockline-lab.XXXXXX)
export DOCKLINE_LAB_CONFIG=$run_dir
teardown() {
    trap - EXIT INT TERM
    for c in $(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
        docker logs "$c" >"$RESULTS/$c.log" 2>&1
    done
    if [ "${DOCKLINE_LAB_KEEP:-}" = 1 ]; then
        say "left running (DOCKLINE_LAB_KEEP=1): stop it with DOCKLINE_LAB_CONFIG=$run_dir ${COMPOSE[*]} -p $PROJECT -f docker/lab/compose.yml down"
        return
    fi
    compose down --remove-orphans --timeout 2 >/dev/null 2>&1
    rm -rf "$run_dir"
    if [ -n "$started_dockerd" ]; then
        kill "$started_dockerd" 2>/dev/null
        wait "$started_dockerd" 2>/dev/null
    fi
}
trap teardown EXIT
trap 'say "interrupted"; exit 130' INT TERM

if [ ! -x "$BINARY" ]; then
    say "building $BINARY"
    cargo build --release -p dockline --locked || exit 1
fi
say "images"
BASE=dockline-base:bookworm bash docker/base.sh || exit 1
TAG=dockline-lab-node:latest DOCKLINE_BINARY=$BINARY bash docker/build.sh >/dev/null || exit 1
docker build -q -f docker/lab/Dockerfile -t dockline-lab-tools:latest docker/lab >/dev/null || exit 1

# Each node's file is its own part and the shared part; the gossip key is new every run.
head -c 32 /dev/urandom | base64 >"$run_dir/gossip.key"
for node in "${NODES[@]}"; do
    install -d "$run_dir/$node"
    cat "docker/lab/config/$node.toml" docker/lab/config/shared.toml >"$run_dir/$node/dockline.toml"
    install -o 10001 -g 10001 -m 0400 "$run_dir/gossip.key" "$run_dir/$node/gossip.key"
    "$BINARY" check "$run_dir/$node/dockline.toml" >/dev/null || { say "$node's config is invalid"; exit 1; }
done

compose down --remove-orphans --timeout 2 >/dev/null 2>&1
say "up (${COMPOSE[*]})"
compose up -d >/dev/null || exit 1

pid_of() { docker inspect -f '{{.State.Pid}}' "dockline-lab-$1"; }
in_ns() { # container command...: run a host program in the container's network namespace
    local pid
    pid=$(pid_of "$1") || return 1
    shift
    nsenter -t "$pid" -n "$@"
}
# Wires the lab as its operator would: routes between the segments through the router,
# and each pod into its node (a bridge `pods` holding the node's pod gateway, a veth per
# pod), as a CNI plugin does.
for c in node1 node2 client prometheus; do in_ns "$c" ip route add 172.30.1.0/24 via 172.30.0.1; done
in_ns node3 ip route add 172.30.0.0/24 via 172.30.1.1
in_ns client ip route add 203.0.113.0/28 via 172.30.0.1
in_ns node1 ip addr add "$NODE1_OTHER_IP/24" dev eth0
for n in 1 2 3; do
    in_ns "node$n" sh -c "ip link add pods type bridge && ip addr add 10.111.$n.1/24 dev pods && ip link set pods up"
    for pod in a b; do
        ip=10.111.$n.$([ $pod = a ] && echo 10 || echo 11)
        in_ns "node$n" ip link add "veth-$pod" mtu 1450 type veth peer name eth0 netns "$(pid_of "pod$n$pod")"
        in_ns "node$n" ip link set "veth-$pod" master pods up
        in_ns "pod$n$pod" sh -c "ip addr add $ip/24 dev eth0 && ip link set eth0 mtu 1450 up && ip route add default via 10.111.$n.1"
    done
done

# --- helpers for the checks ---------------------------------------------------------
wait_for() { # seconds command...: true once the command succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.2
    done
}
# The command's output, run again until it matches the extended regex `pattern` or `seconds`
# have passed. The lab converges (gossip, BGP, health checks) after it is up, and on a
# loaded machine its containers may wait for a CPU: a check reads what it sees at last.
poll() { # seconds pattern command...
    local deadline=$((SECONDS + $1)) pattern=$2 out
    shift 2
    while :; do
        out=$("$@" 2>&1)
        [[ "$out" =~ $pattern ]] || [ $SECONDS -ge $deadline ] && break
        sleep 0.3
    done
    printf '%s' "$out"
}
status() { curl -sf -m 2 "http://${NODE_IP[$1]}:9470/status"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
client() { docker exec dockline-lab-client "$@"; }
dig_short() { client dig +short +time=1 +tries=2 @172.30.0.11 "$@" 2>&1 | tr '\n' ' ' | sed 's/ $//'; }
pod_get() { in_ns "$1" curl -s -m 2 "http://$2:8080/"; }
node_route() { in_ns "$1" ip route show proto 215 "$2" | sed 's/ *$//'; } # node destination
mac_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}' "dockline-lab-$1" | tr a-f A-F; }

# --- checks -------------------------------------------------------------------------
ready=0
for node in "${NODES[@]}"; do
    wait_for 40 curl -sf -m 1 "http://${NODE_IP[$node]}:9470/readyz" && ready=$((ready + 1))
done
check "nodes ready (/readyz)" "3 of 3" "$ready of 3" $((ready != 3))

members_alive() { status node1 | json "sum(m['state'] == 'alive' for m in d['members'])"; }
seen=$(poll 15 '^3$' members_alive)
check "gossip members alive (node1)" "3" "${seen:-none}" $([ "$seen" = 3 ]; echo $?)

prometheus_up() {
    curl -sf -m 2 http://172.30.0.9:9090/api/v1/targets |
        json "'%d of %d up' % (sum(t['health']=='up' for t in d['data']['activeTargets']), len(d['data']['activeTargets']))"
}
seen=$(poll 30 '^3 of 3 up$' prometheus_up)
check "Prometheus targets" "3 of 3 up" "${seen:-no answer}" $([ "$seen" = "3 of 3 up" ]; echo $?)

# DNS from the client, against node1's listener on the LAN.
six='^([0-9.]+ ){5}[0-9.]+$'
first=$(poll 15 "$six" dig_short pods.default.svc.cluster.local)
second=$(poll 15 "$six" dig_short pods.default.svc.cluster.local)
count=$(wc -w <<<"$first")
check "DNS headless round-robin" "6 pods, order rotates" "$count: [${first%% *} ...] then [${second%% *} ...]" \
    $([ "$count" = 6 ] && [ "$first" != "$second" ]; echo $?)
seen=$(poll 15 '^10\.222\.0\.10$' dig_short web.default.svc.cluster.local)
check "DNS ClusterIP" "10.222.0.10" "$seen" $([ "$seen" = 10.222.0.10 ]; echo $?)
seen=$(poll 15 '^docs\.example\.com\.$' dig_short docs.default.svc.cluster.local CNAME)
check "DNS ExternalName" "CNAME docs.example.com." "CNAME $seen" $([ "$seen" = docs.example.com. ]; echo $?)
seen=$(poll 15 ' 80 web\.default\.svc\.cluster\.local\.$' dig_short _http._tcp.web.default.svc.cluster.local SRV)
check "DNS SRV" "port 80, web.default.svc...." "$seen" $([[ "$seen" == *" 80 web.default.svc.cluster.local." ]]; echo $?)

# NodePort 30090: on node1's internal IP, and not on its other address.
seen=$(poll 15 '^pod[12]b$' client curl -s -m 2 "http://172.30.0.11:30090/")
check "NodePort on internal IP" "a pod answers" "${seen:-no answer}" $([[ "$seen" == pod[12]b ]]; echo $?)
curl_exit() { client curl -s -m 2 -o /dev/null "$1"; echo $?; }
exit_code=$(poll 15 '^(0|7)$' curl_exit "http://$NODE1_OTHER_IP:30090/")
case $exit_code in
    0) seen=answered ;;
    7) seen="connection refused" ;;
    *) seen="no answer (curl exit $exit_code)" ;;
esac
check "NodePort not on node1's other IP" "connection refused" "$seen" $([ "$seen" = "connection refused" ]; echo $?)

# BGP: both nodes' routes in BIRD, and the client reaches the VIP through the router.
router_birdc() { docker exec dockline-lab-router birdc -s /run/bird.ctl "$@"; }
sessions_up() { router_birdc show protocols | grep -cE '^node[123] +BGP .*Established'; }
next_hops() { router_birdc show route "$BGP_VIP/32" | grep -oE 'via 172\.30\.[01]\.[0-9]+' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
sessions=$(poll 30 '^3$' sessions_up)
check "BGP sessions in BIRD" "3 Established" "$sessions Established" $([ "$sessions" = 3 ]; echo $?)
hops=$(poll 30 '^via 172\.30\.0\.11 via 172\.30\.0\.12$' next_hops)
router_birdc show protocols >"$RESULTS/birdc-protocols.txt" 2>&1
router_birdc show route all "$BGP_VIP/32" >"$RESULTS/birdc-route.txt" 2>&1
in_ns router ip route show "$BGP_VIP" >"$RESULTS/router-kernel-route.txt" 2>&1 # the ECMP route
check "BGP route in BIRD, both hops" "via 172.30.0.11 via 172.30.0.12" "${hops:-none}" \
    $([ "$hops" = "via 172.30.0.11 via 172.30.0.12" ]; echo $?)
seen=$(poll 15 '^pod[12]a$' client curl -s -m 2 "http://$BGP_VIP/")
check "BGP VIP from the client" "a pod answers" "${seen:-no answer}" $([[ "$seen" == pod?a ]]; echo $?)

# VXLAN between node1 and node3 across the router.
seen=$(poll 15 '^pod3a$' pod_get pod1a 10.111.3.10)
route=$(node_route node1 10.111.3.0/24)
check "VXLAN pod1a -> pod3a (HTTP)" "pod3a" "${seen:-no answer}" $([ "$seen" = pod3a ]; echo $?)
check "VXLAN route on node1" "10.111.3.0/24 via 10.111.3.1 dev dockline0" "${route:-none}" \
    $([ "$route" = "10.111.3.0/24 via 10.111.3.1 dev dockline0" ]; echo $?)
seen=$(poll 15 '^pod1b$' pod_get pod3b 10.111.1.11)
check "VXLAN pod3b -> pod1b (HTTP)" "pod1b" "${seen:-no answer}" $([ "$seen" = pod1b ]; echo $?)

# Classic between node1 and node2, switched live: a reload (SIGHUP to the daemon, the
# container's first process), no restart. The pods cannot talk while only one node has
# switched, so the time counts from the second node's signal, node1's reload being done.
podnet_mode() { status "$1" | json "[c for c in d['components'] if c['name']=='podnet'][0]['status']['mode']"; }
set_mode() { # node mode
    sed -i "s/^tunnel_mode = .*/tunnel_mode = \"$2\"/" "$run_dir/$1/dockline.toml"
    kill -HUP "$(pid_of "$1")"
}
answered_after() { # pod ip: milliseconds from now until the pod's pings are answered
    local since deadline
    since=$(date +%s%N) deadline=$((SECONDS + 5))
    until in_ns "$1" ping -c 1 -W 0.2 "$2" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && { echo never; return; }
    done
    echo $((($(date +%s%N) - since) / 1000000))
}
started_before=$(docker inspect -f '{{.State.StartedAt}}' dockline-lab-node1)
set_mode node1 Classic
poll 5 '^Classic$' podnet_mode node1 >/dev/null
set_mode node2 Classic
switch_ms=$(answered_after pod1a 10.111.2.10)
mode=$(podnet_mode node1 2>/dev/null)
route=$(node_route node1 10.111.2.0/24)
seen=$(poll 15 '^pod2a$' pod_get pod1a 10.111.2.10)
check "Classic: mode on node1 after reload" "Classic" "${mode:-unknown}" $([ "$mode" = Classic ]; echo $?)
check "Classic route on node1" "10.111.2.0/24 via 172.30.0.12 dev eth0" "${route:-none}" \
    $([ "$route" = "10.111.2.0/24 via 172.30.0.12 dev eth0" ]; echo $?)
check "Classic pod1a -> pod2a (HTTP)" "pod2a, within 1 s of the reload" "${seen:-no answer}, pings after ${switch_ms} ms" \
    $([ "$seen" = pod2a ] && [ "$switch_ms" != never ] && [ "$switch_ms" -lt 1000 ]; echo $?)
set_mode node1 VXLAN
set_mode node2 VXLAN
seen=$(poll 15 '^pod3a$' pod_get pod1a 10.111.3.10)
started_after=$(docker inspect -f '{{.State.StartedAt}}' dockline-lab-node1)
check "back to VXLAN, same process" "pod3a, node1 not restarted" \
    "${seen:-no answer}, $([ "$started_before" = "$started_after" ] && echo "not restarted" || echo restarted)" \
    $([ "$seen" = pod3a ] && [ "$started_before" = "$started_after" ]; echo $?)

# L2: the VIP's owner answers ARP on LAN A; killed, another node answers within a second.
owner=$(status node1 | json "[v['owner'] for v in d['vip_owners'] if v['ip']=='$L2_VIP'][0]" 2>/dev/null)
case "$owner" in node1) survivor=node2 ;; node2) survivor=node1 ;; *) survivor= ;; esac
arp_answer() { client arping -c 1 -w 2 -I eth0 "$L2_VIP" | grep -o '\[[0-9A-F:]*\]' | head -n 1 | tr -d '[]'; }
seen_mac=$(poll 15 "^$(mac_of "${owner:-none}")\$" arp_answer)
page=$(poll 15 '^pod[12][ab]$' client curl -s -m 2 "http://$L2_VIP/")
check "L2 VIP answered by its owner" "ARP from ${owner:-?}, a pod answers" \
    "ARP from $([ -n "$owner" ] && [ "$seen_mac" = "$(mac_of "$owner")" ] && echo "$owner" || echo "${seen_mac:-nobody}"), ${page:-no answer}" \
    $([ -n "$owner" ] && [ "$seen_mac" = "$(mac_of "$owner")" ] && [[ "$page" == pod[12]? ]]; echo $?)
if [ -n "$survivor" ]; then
    # An ARP request every 50 ms (arping waits whole seconds, so one arping each), logged
    # as: when the answer came, when the request went out, the MAC that answered (the
    # client's clock is the host's).
    docker exec -d dockline-lab-client sh -c "rm -f /tmp/arping.stop /tmp/arping.log
        while [ ! -e /tmp/arping.stop ]; do
            (sent=\$(date +%s%N); mac=\$(arping -c 1 -w 1 -I eth0 $L2_VIP | grep -o '\[[0-9A-F:]*\]');
             [ -n \"\$mac\" ] && echo \"\$(date +%s%N) \$sent \$mac\" >>/tmp/arping.log) &
            sleep 0.05
        done"
    sleep 1
    owner_mac=$(mac_of "$owner") survivor_mac=$(mac_of "$survivor")
    killed_at=$(date +%s%N)
    docker kill "dockline-lab-$owner" >/dev/null
    wait_for 5 sh -c "docker exec dockline-lab-client grep -q '$survivor_mac' /tmp/arping.log"
    client touch /tmp/arping.stop
    sleep 1
    client cat /tmp/arping.log | sort -n >"$RESULTS/arping.log"
    echo "$killed_at docker kill dockline-lab-$owner" >>"$RESULTS/arping.log"
    moved_at=$(grep -i "$survivor_mac" "$RESULTS/arping.log" | awk -v t="$killed_at" '$1 > t { print $1; exit }')
    last_old=$(grep -i "$owner_mac" "$RESULTS/arping.log" | tail -n 1 | cut -d' ' -f1)
    if [ -n "$moved_at" ]; then
        move_ms=$(((moved_at - killed_at) / 1000000))
        seen="$survivor answers after $move_ms ms ($owner last at $(((${last_old:-$killed_at} - killed_at) / 1000000)) ms)"
    else
        move_ms=99999 seen="no answer from $survivor"
    fi
    check "L2 VIP moves on docker kill" "another node within 1000 ms" "$seen" $((move_ms >= 1000))
    page=$(poll 15 "^pod${survivor#node}[ab]\$" client curl -s -m 2 "http://$L2_VIP/")
    check "L2 VIP serves after the move" "a pod on $survivor" "${page:-no answer}" $([[ "$page" == "pod${survivor#node}"? ]]; echo $?)
else
    check "L2 VIP moves on docker kill" "another node within 1000 ms" "no owner in /status" 1
fi

# The status page, from the surviving node: every node, the VIP's new owner, the BGP
# sessions and the pod network; and a screenshot when Chromium is here.
viewer=${survivor:-node2}
curl -s -m 2 "http://${NODE_IP[$viewer]}:9470/" >"$RESULTS/status-page.html"
missing_parts=()
for want in node1 node2 node3 "$L2_VIP" 'id="bgp"' 'id="podnet"'; do
    grep -q "$want" "$RESULTS/status-page.html" || missing_parts+=("$want")
done
vip_row=$(python3 - "$RESULTS/status-page.html" "$L2_VIP" <<'EOF'
import re, sys
page, vip = open(sys.argv[1]).read(), sys.argv[2]
row = re.search(r'<tr data-vip="%s">(.*?)</tr>' % re.escape(vip), page, re.S)
owner = row and re.search(r'<td class="owner">(.*?)</td>', row.group(1), re.S)
print(owner.group(1) if owner else "")
EOF
)
check "status page ($viewer)" "3 nodes, BGP, pod network; VIP owner $viewer (this node)" \
    "$([ ${#missing_parts[@]} = 0 ] && echo "all there" || echo "missing ${missing_parts[*]}"); VIP owner ${vip_row:-none}" \
    $([ ${#missing_parts[@]} = 0 ] && [ "$vip_row" = "$viewer (this node)" ]; echo $?)
if command -v chromium >/dev/null; then
    profile=$(mktemp -d)
    chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
        --user-data-dir="$profile" --window-size=1280,2400 --screenshot="$RESULTS/status-page.png" \
        "http://${NODE_IP[$viewer]}:9470/" >/dev/null 2>&1
    rm -rf "$profile"
    [ -s "$RESULTS/status-page.png" ] && say "screenshot: $RESULTS/status-page.png"
fi

print_table
