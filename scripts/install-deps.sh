#!/usr/bin/env bash
# Installs what tusker's tests, demo and benchmark need on a fresh Debian 12 machine:
#   - PostgreSQL 15 server binaries (Debian's postgresql-15), when absent;
#   - etcd, built from the Go module proxy and cached outside the repo, keyed by version;
#   - with --bench: wrk and Patroni (Debian packages) for `make bench`.
# Idempotent: a second run only checks. Prints the etcd binary path on its last line.
set -euo pipefail

ETCD_VERSION="${TUSKER_ETCD_VERSION:-v3.6.16}"
CACHE="${TUSKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tusker}"
PGBIN="${TUSKER_PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { echo "install-deps: $*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root to run: $*"; exit 1; fi
}

apt_install() {
	# Package postinst scripts must not start system services (a stray postgres on 5432).
	local created=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod +x /usr/sbin/policy-rc.d
		created=1
	fi
	local i
	for i in 1 2 3; do
		as_root apt-get -o DPkg::Lock::Timeout=600 update -qq && break
		sleep 5
	done
	DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
	[ -n "$created" ] && as_root rm -f /usr/sbin/policy-rc.d
	return 0
}

if [ ! -x "$PGBIN/postgres" ] || [ ! -x "$PGBIN/pg_rewind" ] || [ ! -x "$PGBIN/pg_basebackup" ]; then
	log "PostgreSQL 15 not found in $PGBIN: installing postgresql-15"
	apt_install postgresql-15
fi
"$PGBIN/postgres" --version >&2

# make bench also needs wrk (the REST load generator) and Patroni 3.0.2 to compare against.
if [ "${1:-}" = "--bench" ]; then
	missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	command -v patroni >/dev/null || missing+=(patroni python3-etcd)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing for the benchmark: ${missing[*]}"
		apt_install "${missing[@]}"
	fi
fi

ETCD_DIR="$CACHE/etcd-$ETCD_VERSION"
if [ ! -x "$ETCD_DIR/etcd" ]; then
	log "building etcd $ETCD_VERSION from the Go module proxy into $ETCD_DIR (about a minute, once)"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	(
		cd "$work"
		go mod init etcdbuild >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" >&2
		mkdir -p "$ETCD_DIR.tmp"
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcd" go.etcd.io/etcd/server/v3
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
	)
	rm -rf "$ETCD_DIR"
	mv "$ETCD_DIR.tmp" "$ETCD_DIR"
fi
# Not piped into head: with pipefail, etcd's SIGPIPE after head exits would fail the script.
etcd_version=$("$ETCD_DIR/etcd" --version)
echo "${etcd_version%%$'\n'*}" >&2
echo "$ETCD_DIR/etcd"
