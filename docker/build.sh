#!/usr/bin/env bash
# Builds the dockline image from the release binary made here (--target prebuilt: the image
# ships the binary the tests ran; see docker/Dockerfile). The base image comes from
# debootstrap (minbase bookworm), imported once, so no registry is needed. Needs root.
# Starts dockerd by hand when none answers (no init system here).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-dockline-base:bookworm}
TAG=${TAG:-dockline:latest}
command -v dockerd >/dev/null || { apt-get update -qq && apt-get install -y -qq docker.io; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
if ! docker info >/dev/null 2>&1; then
    (dockerd >/tmp/dockerd.log 2>&1 &)
    for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    root=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$root" >/dev/null
    tar -C "$root" -c . | docker import - "$BASE"
    rm -rf "$root"
fi
cargo build --release --locked -p dockline
# The Dockerfile copies target/release/dockline; build where CARGO_TARGET_DIR points.
target=${CARGO_TARGET_DIR:-target}
if [ "$(realpath "$target")" != "$(realpath target 2>/dev/null || echo none)" ]; then
    echo "docker/build.sh: CARGO_TARGET_DIR must be ./target (the build context holds the binary)" >&2
    exit 1
fi
docker build -f docker/Dockerfile --target prebuilt --build-arg BASE="$BASE" -t "$TAG" .
echo "built $TAG: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
