#!/usr/bin/env bash
# Builds the dockline image from a release binary made on this host (--target prebuilt: the
# image ships the binary the tests ran; see docker/Dockerfile). The base image comes from
# debootstrap (minbase bookworm, docker/base.sh), imported once, so no registry is needed.
# Needs root. Starts dockerd by hand when none answers (no init system here).
#
# DOCKLINE_BINARY names a binary already built (docker/lab/run.sh passes the one the tests
# ran); without it, `cargo build --release` makes one in $CARGO_TARGET_DIR (or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-dockline-base:bookworm}
TAG=${TAG:-dockline:latest}
command -v dockerd >/dev/null || { apt-get update -qq && apt-get install -y -qq docker.io; }
if ! docker info >/dev/null 2>&1; then
    (dockerd >/tmp/dockerd.log 2>&1 &)
    for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
BASE="$BASE" bash docker/base.sh
binary=${DOCKLINE_BINARY:-}
if [ -z "$binary" ]; then
    cargo build --release --locked -p dockline
    binary=${CARGO_TARGET_DIR:-target}/release/dockline
fi
# A build context of just what the prebuilt stages copy, wherever the binary was built.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
install -D "$binary" "$context/target/release/dockline"
install -D docker/rootfs.sh "$context/docker/rootfs.sh"
install -D -m 0644 config/default.toml "$context/config/default.toml"
docker build -q -f docker/Dockerfile --target prebuilt --build-arg BASE="$BASE" -t "$TAG" "$context"
echo "built $TAG: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
