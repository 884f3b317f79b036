#!/usr/bin/env bash
# make deb: the Debian package of tusker for VMs (binaries, systemd unit, example configuration),
# built with nfpm from deploy/systemd/nfpm.yaml into bin/. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "build-deb: $*" >&2; }

[ -x bin/tusker ] || { log "bin/tusker not found: run make build first"; exit 1; }
nfpm=$(bash scripts/install-deps.sh --deb | tail -n 1)

# A Debian version must start with a digit: v1.2.3-4-gabc becomes 1.2.3+4.gabc, a bare commit
# 0.0.0~git.<commit> (sorting before any release).
v=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
case "$v" in
v[0-9]*) debv=${v#v} ;;
*) debv="0.0.0~git.$v" ;;
esac
export TUSKER_DEB_VERSION=${debv//-/.}
export TUSKER_DEB_ARCH=$(go env GOARCH)

out=bin/tusker_${TUSKER_DEB_VERSION}_${TUSKER_DEB_ARCH}.deb
rm -f bin/tusker_*.deb
"$nfpm" package --config deploy/systemd/nfpm.yaml --packager deb --target "$out" >&2
log "$out"
echo "$out"
