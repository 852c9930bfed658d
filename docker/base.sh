#!/usr/bin/env bash
# Makes the base image every dockline image builds on (dockline-base:bookworm, or $BASE)
# when it is not there yet: a minbase bookworm from debootstrap, imported, so no registry
# is needed. Used by docker/build.sh and docker/lab/run.sh; needs root and a running
# dockerd.
set -euo pipefail
BASE=${BASE:-dockline-base:bookworm}
docker image inspect "$BASE" >/dev/null 2>&1 && exit 0
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" >/dev/null
tar -C "$root" -c . | docker import - "$BASE"
