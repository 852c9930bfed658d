#!/usr/bin/env bash
# Builds the dockline image. The base image comes from debootstrap (minbase bookworm) and is
# imported once; the binary is built on the host with cargo. Needs root and Docker.
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
cargo build --release -p dockline
docker build -f docker/Dockerfile --build-arg BASE="$BASE" -t "$TAG" .
echo "built $TAG"
