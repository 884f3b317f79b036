#!/usr/bin/env bash
# make image: builds docker/Dockerfile on a machine that reaches no container registry, with
# Debian's own tools, and leaves the image in the local podman store and in an archive.
#   - the base image (the Dockerfile's DEBIAN_IMAGE, debian:bookworm-slim elsewhere) is a root
#     filesystem that mmdebstrap makes from Debian's packages: minbase, without documentation,
#     cached in TUSKER_CACHE (default ~/.cache/tusker) and keyed by the options that made it;
#   - buildah then builds the Dockerfile itself on it, with BINARIES=prebuilt (the bin/tusker of
#     `make build`; tuskerctl is the same binary under another name), so the package list, the
#     setup script and the image's entrypoint, user and health check are those of
#     docker/Dockerfile, whoever builds it;
#   - the result is localhost/tusker:latest in the podman store (buildah and podman share it) and
#     bin/tusker-image.tar, a docker-archive that podman load, docker load and
#     ctr images import all read.
# Needs root (mmdebstrap's root mode, buildah's storage) and the tools of install-deps.sh --image.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${TUSKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tusker}"
IMAGE="${TUSKER_IMAGE:-localhost/tusker:latest}"
ARCHIVE="${TUSKER_IMAGE_ARCHIVE:-bin/tusker-image.tar}"
SUITE=bookworm
log() { echo "build-image: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (mmdebstrap and buildah's store); run it with sudo"; exit 1; }
for t in mmdebstrap buildah podman; do
	command -v "$t" >/dev/null || { log "$t not found: run scripts/install-deps.sh --image"; exit 1; }
done
for b in bin/tusker; do
	[ -x "$b" ] || { log "$b not found: run make build first"; exit 1; }
done

# crun refuses a hybrid cgroup layout whose v2 mount still holds a controller ("cgroups in hybrid
# mode not supported, drop all controllers from cgroupv2"). A machine whose v1 hierarchy lacks
# hugetlb has it there: mounting it as a v1 hierarchy too moves it out of the v2 mount.
bash scripts/host-cgroups.sh

# Podman and buildah raise a container's RLIMIT_NOFILE and RLIMIT_NPROC above this process's own
# hard limits, which fails without CAP_SYS_RESOURCE (a sandboxed build machine): ask for these.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
pidmax=$(cat /proc/sys/kernel/pid_max)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; then nproc=$pidmax; fi

# The base: what debian:bookworm-slim is (minbase, /usr merged as a layout rather than by the
# usrmerge package, no documentation or translations), from
# Debian's packages. Its name carries a hash of the options, so a change of them makes a new one.
mmopts=(--variant=minbase --mode=root --format=tar --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*')
key=$(printf '%s\n' "$SUITE" "${mmopts[@]}" | sha256sum | cut -c1-12)
base="localhost/tusker-debian:$SUITE-slim-$key"
if ! podman image exists "$base"; then
	tarball="$CACHE/debian-$SUITE-slim-$key.tar"
	if [ ! -s "$tarball" ]; then
		log "making the Debian $SUITE base with mmdebstrap into $tarball (about a minute, once)"
		mkdir -p "$CACHE"
		mmdebstrap --quiet "${mmopts[@]}" "$SUITE" "$tarball.tmp"
		mv "$tarball.tmp" "$tarball"
	fi
	log "importing $tarball as $base"
	ctr=$(buildah from scratch)
	trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
	buildah add --quiet "$ctr" "$tarball" /
	buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$ctr"
	buildah commit --quiet --rm "$ctr" "$base" >/dev/null
	trap - EXIT
fi

version=$(bin/tusker --version | awk '{print $2}')
log "building docker/Dockerfile on $base with bin/ ($version) as $IMAGE"
# --layers keeps the package layer between builds: only the binaries' layer is new each time.
# Host networking: the RUN step's apt-get reaches Debian's mirror without a container network.
buildah build --quiet --layers --force-rm --format docker --network host \
	--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
	--build-arg DEBIAN_IMAGE="$base" --build-arg BINARIES=prebuilt \
	--label org.opencontainers.image.version="$version" \
	-f docker/Dockerfile -t "$IMAGE" . >/dev/null

# The image this build replaced is now untagged: remove it (and any other unused untagged image)
# so that repeated builds do not fill the disk. The cached package layer stays: the new image
# builds on it.
podman image prune -f >/dev/null 2>&1 || true # images that containers still use stay

mkdir -p "$(dirname "$ARCHIVE")"
rm -f "$ARCHIVE"
podman save --quiet --format docker-archive -o "$ARCHIVE" "$IMAGE"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "$IMAGE: $((size / 1000000)) MB; archive $ARCHIVE"
