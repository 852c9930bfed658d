#!/usr/bin/env bash
# The one test command of dockline: prepares a fresh machine (Debian packages the tests
# drive), then checks formatting and lints and runs every test, the network-namespace
# scenarios included, and last the docker-compose lab (docker/lab/run.sh). It needs root
# (scenarios build namespaces, veth links and bridges; the lab starts dockerd): as root it
# runs as is (a root shell in a container has no sudo); otherwise it runs itself again
# through sudo.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        # Before the `cd` below, so "$0" still names this script. sudo resets PATH to its
        # secure_path, where the user's cargo is not: pass it on.
        exec sudo -E env "PATH=$PATH" bash "$0" "$@"
    fi
    echo "tests/run.sh: needs root (the scenario tests create network namespaces), and there is no sudo here: run it from a root shell" >&2
    exit 1
fi
cd "$(dirname "$0")/.."

# command -> Debian package, for every program a test runs.
declare -A needs=(
    [ip]=iproute2
    [curl]=curl
    [ping]=iputils-ping
    [dig]=bind9-dnsutils
    [knotd]=knot
    [knotc]=knot
    [arping]=iputils-arping
    [ndisc6]=ndisc6
    [tcpdump]=tcpdump
    [python3]=python3
    [nginx]=nginx
    [ss]=iproute2
    [prlimit]=util-linux
    [bird]=bird2
    [birdc]=bird2
    [gobgpd]=gobgpd
    [gobgp]=gobgpd
    [vtysh]=frr
    [etcd]=etcd-server
    [etcdctl]=etcd-client
    [openssl]=openssl
    [protoc]=protobuf-compiler
    [sysctl]=procps
    [ethtool]=ethtool
    [bridge]=iproute2
    [iperf3]=iperf3
    [setpriv]=util-linux
    [unshare]=util-linux
    [chromium]=chromium
    [iptables]=iptables
)
missing=()
for cmd in "${!needs[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    rustup component add clippy rustfmt
fi

# Namespaces left by an earlier run that was killed (their creator's pid is gone).
for ns in $(ip netns list 2>/dev/null | awk '/^dl-/{print $1}'); do
    pid=$(echo "$ns" | cut -d- -f2)
    kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast

# The compose lab runs the release binary the image is built from, compiled here once (the
# lab never compiles inside Docker). It says SKIP and passes where no Docker engine can be
# started.
echo "== cargo build --release (the lab's binary)"
cargo build --release -p dockline --locked
echo "== docker/lab/run.sh"
DOCKLINE_BINARY="${CARGO_TARGET_DIR:-target}/release/dockline" bash docker/lab/run.sh
