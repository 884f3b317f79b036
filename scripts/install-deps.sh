#!/usr/bin/env bash
# Installs what tusker's tests, demo and benchmark need on a fresh Debian 12 machine:
#   - PostgreSQL 15 server binaries (Debian's postgresql-15), when absent;
#   - etcd 3.4 and ZooKeeper 3.8 (Debian's etcd-server and zookeeper), for the DCS conformance suite;
#   - etcd 3.6, Consul 1.16.3 and kube-apiserver 1.36.3, built from the Go module proxy and cached
#     outside the repo, keyed by version (TUSKER_CACHE, default ~/.cache/tusker);
#   - iproute2 and util-linux (ip, nsenter) for the fault-injection suite, when absent;
#   - for the image and its tests: mmdebstrap, buildah, podman and crun (Debian packages);
#   - for the Kubernetes node the StatefulSet test runs on: containerd, runc, the CNI plugins and
#     iptables (Debian packages), and kube-controller-manager, kube-scheduler, kubelet and
#     kube-proxy built from the Go module proxy like kube-apiserver, and cached the same way;
#   - for the Debian package: nfpm built from the Go module proxy (cached), and systemd-analyze;
#   - with --bench: wrk and Patroni (Debian packages) for `make bench`.
# --demo, --bench and --nemesis install only PostgreSQL and etcd 3.6 besides (and, for --bench,
# wrk and Patroni; for --nemesis, ip and nsenter): the other DCS servers are for the tests.
# --image installs only the image tools (make image), --deb only nfpm (make deb).
# --test (make test) is the default but for the Kubernetes node components, the slowest build
# (about 6 minutes) that only the last suites need: it starts them building in the background at
# the lowest CPU and I/O priority, in the idle time of the other suites, and test/kube waits for
# them. --kube-node builds just those (the background job).
# Idempotent: a second run only checks. Prints the etcd binary path on its last line (not with
# --image, --deb or --kube-node).
set -euo pipefail

ETCD_VERSION="${TUSKER_ETCD_VERSION:-v3.6.16}"
CONSUL_VERSION="${TUSKER_CONSUL_VERSION:-v1.16.3}"
KUBE_VERSION="${TUSKER_KUBE_VERSION:-v1.36.3}"
NFPM_VERSION="${TUSKER_NFPM_VERSION:-v2.45.2}"
CACHE="${TUSKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tusker}"
PGBIN="${TUSKER_PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { echo "install-deps: $*" >&2; }

mode="${1:-}"
case "$mode" in "" | --test | --demo | --bench | --nemesis | --image | --deb | --kube-node) ;; *)
	log "unknown option $mode (expected --test, --demo, --bench, --nemesis, --image, --deb or --kube-node)"
	exit 2
	;;
esac
all=
case "$mode" in "" | --test) all=1 ;; esac # everything make test needs
# Compiler DWARF is thrown away by -ldflags -s -w anyway; not making it takes 8 % off a build.
GCFLAGS=all=-dwarf=false

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

# make image: mmdebstrap makes the base root filesystem, buildah builds docker/Dockerfile on it,
# podman holds and saves the image, crun runs the build's RUN steps (and the tests' containers).
image_tools() {
	local missing=()
	command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
	command -v buildah >/dev/null || missing+=(buildah)
	command -v podman >/dev/null || missing+=(podman)
	command -v crun >/dev/null || missing+=(crun)
	[ -e /usr/share/mmdebstrap/hooks/merged-usr ] || missing+=(mmdebstrap)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing the image tools: ${missing[*]}"
		apt_install "${missing[@]}"
	fi
}

# make deb: nfpm, a Go program, built from the Go module proxy into the cache by version.
NFPM_DIR="$CACHE/nfpm-$NFPM_VERSION"
deb_tools() {
	if [ ! -x "$NFPM_DIR/nfpm" ]; then
		log "building nfpm $NFPM_VERSION from the Go module proxy into $NFPM_DIR (once)"
		mkdir -p "$NFPM_DIR.tmp"
		CGO_ENABLED=0 GOBIN="$NFPM_DIR.tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" \
			"github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" >&2
		rm -rf "$NFPM_DIR"
		mv "$NFPM_DIR.tmp" "$NFPM_DIR"
	fi
}

case "$mode" in
--image)
	image_tools
	exit 0
	;;
--deb)
	deb_tools
	echo "$NFPM_DIR/nfpm"
	exit 0
	;;
esac

if [ ! -x "$PGBIN/postgres" ] || [ ! -x "$PGBIN/pg_rewind" ] || [ ! -x "$PGBIN/pg_basebackup" ]; then
	log "PostgreSQL 15 not found in $PGBIN: installing postgresql-15"
	apt_install postgresql-15
fi
"$PGBIN/postgres" --version >&2

# The conformance suite runs against Debian's etcd 3.4 and ZooKeeper 3.8 too.
missing=()
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)
if [ -n "$all" ] && [ ${#missing[@]} -gt 0 ]; then
	log "installing for the DCS tests: ${missing[*]}"
	apt_install "${missing[@]}"
fi

# The fault-injection suite (make nemesis, and its short profile in make test) builds network
# namespaces with iproute2's ip and enters them with util-linux's nsenter.
if [ -n "$all" ] || [ "$mode" = "--nemesis" ]; then
	missing=()
	command -v ip >/dev/null || missing+=(iproute2)
	command -v nsenter >/dev/null || missing+=(util-linux)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing for the fault-injection suite: ${missing[*]}"
		apt_install "${missing[@]}"
	fi
fi

# The backup tests (bootstrap and replica methods, standby clusters) run Debian's pgBackRest.
if [ -n "$all" ] && ! command -v pgbackrest >/dev/null; then
	log "installing for the backup tests: pgbackrest"
	apt_install pgbackrest
fi

# make test also builds the image and runs it (podman, crun), runs a Kubernetes node (containerd,
# runc, the CNI plugins, iptables for kube-proxy), and checks the systemd unit (systemd-analyze).
if [ -n "$all" ]; then
	image_tools
	missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v systemd-analyze >/dev/null || missing+=(systemd)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing for the image, Kubernetes node and systemd tests: ${missing[*]}"
		apt_install "${missing[@]}"
	fi
	deb_tools
fi

# make bench also needs wrk (the REST load generator) and Patroni 3.0.2 to compare against.
if [ "$mode" = "--bench" ]; then
	missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	command -v patroni >/dev/null || missing+=(patroni python3-etcd)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing for the benchmark: ${missing[*]}"
		apt_install "${missing[@]}"
	fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Consul: a wrapper module that requires the release and copies its excludes (they only apply in
# the main module); 1.16.3 is the last MPL-2.0 release the proxy serves. Two of its modules are
# missing from the proxy's checksum database, hence GONOSUMDB for just those.
CONSUL_DIR="$CACHE/consul-$CONSUL_VERSION"
if [ -n "$all" ] && [ ! -x "$CONSUL_DIR/consul" ]; then
	log "building consul $CONSUL_VERSION from the Go module proxy into $CONSUL_DIR (about 5 minutes, once)"
	mkdir -p "$work/consul"
	(
		cd "$work/consul"
		printf 'module consulbuild\ngo 1.20\nrequire github.com/hashicorp/consul %s\nexclude (\n\tgithub.com/hashicorp/go-msgpack v1.1.5\n\tgithub.com/hashicorp/go-msgpack v1.1.6\n)\n' "$CONSUL_VERSION" >go.mod
		export GONOSUMDB=github.com/hashicorp/consul/envoyextensions,github.com/hashicorp/hcp-sdk-go
		GOFLAGS=-mod=mod go get "github.com/hashicorp/consul@$CONSUL_VERSION" >&2
		mkdir -p "$CONSUL_DIR.tmp"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -gcflags "$GCFLAGS" \
			-ldflags "-s -w -X github.com/hashicorp/consul/version.Version=${CONSUL_VERSION#v} -X github.com/hashicorp/consul/version.VersionPrerelease= -X github.com/hashicorp/consul/version.GitCommit=modproxy" \
			-o "$CONSUL_DIR.tmp/consul" github.com/hashicorp/consul
	)
	rm -rf "$CONSUL_DIR"
	mv "$CONSUL_DIR.tmp" "$CONSUL_DIR"
fi

# Kubernetes: k8s.io/kubernetes replaces its staging modules with local directories, so a wrapper
# module points each one it requires at the matching v0.x.y on the proxy instead. kube-apiserver
# (the DCS tests) and the node's components (the StatefulSet test) are cached apart; what is
# missing of a group is built in one go build, which compiles the packages they share once (and
# the Go build cache keeps them for the other group).
KUBE_DIR="$CACHE/kube-apiserver-$KUBE_VERSION"
KUBE_NODE_DIR="$CACHE/kube-node-$KUBE_VERSION"
KUBE_NODE_BINS=(kube-controller-manager kube-scheduler kubelet kube-proxy)
KUBE_NODE_JOB="$CACHE/kube-node-$KUBE_VERSION.building" # the background build's pid
KUBE_NODE_LOG="$CACHE/kube-node-$KUBE_VERSION.log"

build_kube() { # build_kube DIR COMMAND...: builds the commands of k8s.io/kubernetes into DIR
	local dir=$1
	shift
	log "building $* $KUBE_VERSION from the Go module proxy into $dir (about 4 minutes for kube-apiserver, 6 for the node's four, once)"
	rm -rf "$work/kube"
	mkdir -p "$work/kube"
	(
		cd "$work/kube"
		staging="v0.${KUBE_VERSION#v1.}"
		minor="${KUBE_VERSION#v1.}"
		minor="${minor%%.*}"
		proxy="$(go env GOPROXY)"
		proxy="${proxy%%,*}"
		case "$proxy" in direct | off | "") proxy=https://proxy.golang.org ;; esac
		curl -fsSL "$proxy/k8s.io/kubernetes/@v/$KUBE_VERSION.mod" -o kubernetes.mod
		{
			printf 'module kubebuild\ngo 1.26\nrequire k8s.io/kubernetes %s\n' "$KUBE_VERSION"
			grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ v0\.0\.0([[:space:]]|$)' kubernetes.mod |
				awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
		} >go.mod
		pkgs=()
		for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
		GOFLAGS=-mod=mod go get "${pkgs[@]/%/@$KUBE_VERSION}" >&2
		mkdir -p out
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -gcflags "$GCFLAGS" \
			-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
			-o out/ "${pkgs[@]}"
	)
	mkdir -p "$dir"
	for b in "$@"; do
		mv "$work/kube/out/$b" "$dir/$b.tmp"
		mv "$dir/$b.tmp" "$dir/$b"
	done
}

node_missing=()
for b in "${KUBE_NODE_BINS[@]}"; do
	[ -x "$KUBE_NODE_DIR/$b" ] || node_missing+=("$b")
done

if [ "$mode" = --kube-node ]; then
	# The background job of --test (or a direct call): the pid file goes when it ends, and
	# test/kube, finding the binaries missing and no job running, reports this log.
	trap 'rm -rf "$work"; rm -f "$KUBE_NODE_JOB"' EXIT
	[ ${#node_missing[@]} -eq 0 ] || build_kube "$KUBE_NODE_DIR" "${node_missing[@]}"
	exit 0
fi

if [ -n "$all" ] && [ ! -x "$KUBE_DIR/kube-apiserver" ]; then
	build_kube "$KUBE_DIR" kube-apiserver
fi

if [ -n "$all" ] && [ ${#node_missing[@]} -gt 0 ]; then
	if [ "$mode" = --test ]; then
		if [ -f "$KUBE_NODE_JOB" ] && kill -0 "$(cat "$KUBE_NODE_JOB")" 2>/dev/null; then
			log "the Kubernetes node components are being built in the background already (log: $KUBE_NODE_LOG)"
		else
			log "building ${node_missing[*]} in the background at low priority (log: $KUBE_NODE_LOG); test/kube waits for them"
			mkdir -p "$CACHE"
			# setsid: an interrupted make test does not take the build with it; the next run reuses it.
			nohup setsid nice -n 19 ionice -c 3 bash "$0" --kube-node >"$KUBE_NODE_LOG" 2>&1 </dev/null &
			echo $! >"$KUBE_NODE_JOB"
		fi
	else
		build_kube "$KUBE_NODE_DIR" "${node_missing[@]}"
	fi
fi

ETCD_DIR="$CACHE/etcd-$ETCD_VERSION"
if [ ! -x "$ETCD_DIR/etcd" ]; then
	log "building etcd $ETCD_VERSION from the Go module proxy into $ETCD_DIR (about a minute, once)"
	mkdir -p "$work/etcd"
	(
		cd "$work/etcd"
		go mod init etcdbuild >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" >&2
		mkdir -p "$ETCD_DIR.tmp"
		CGO_ENABLED=0 go build -trimpath -gcflags "$GCFLAGS" -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcd" go.etcd.io/etcd/server/v3
		CGO_ENABLED=0 go build -trimpath -gcflags "$GCFLAGS" -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
	)
	rm -rf "$ETCD_DIR"
	mv "$ETCD_DIR.tmp" "$ETCD_DIR"
fi
# Not piped into head: with pipefail, etcd's SIGPIPE after head exits would fail the script.
etcd_version=$("$ETCD_DIR/etcd" --version)
echo "${etcd_version%%$'\n'*}" >&2
echo "$ETCD_DIR/etcd"
