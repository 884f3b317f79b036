#!/bin/sh
# Turns a Debian 12 root filesystem into tusker's runtime: the postgres user, PostgreSQL 15 and
# the directories tusker uses. docker/Dockerfile runs it in a RUN step on debian:bookworm-slim and
# `make image` (scripts/build-image.sh) in the same way on a root filesystem that mmdebstrap made
# from Debian's packages, so both images are made by this one script from one package list.
# It runs as root inside the target, next to the files it reads (packages, dpkg-slim.cfg).
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# uid and gid 999, as in Debian's postgres image: deploy/kubernetes runs the pods with
# runAsUser/fsGroup 999, and a data directory moved between the two images keeps its owner.
# Made before PostgreSQL is installed, whose package then adopts this user instead of making one.
if ! getent group postgres >/dev/null; then
	groupadd --system --gid 999 postgres
fi
if ! getent passwd postgres >/dev/null; then
	useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --no-create-home \
		--shell /bin/bash --comment "PostgreSQL administrator" postgres
fi

# Before any package: what dpkg must not unpack (documentation, JIT), and no "15/main" cluster
# made by the package's postinst: tusker runs initdb itself, in the data directory it is given.
# The manual page directories stay (empty): the PostgreSQL client's postinst links psql.1.gz there.
mkdir -p /etc/dpkg/dpkg.cfg.d /etc/postgresql-common/createcluster.d /usr/share/man/man1 /usr/share/man/man7
cp "$here/dpkg-slim.cfg" /etc/dpkg/dpkg.cfg.d/tusker-slim
echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/tusker.conf

packages=$(sed -e 's/#.*//' "$here/packages" | tr -s ' \n' ' ')
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $packages
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log

# PostgreSQL's socket directory (Debian's default unix_socket_directories) and the home, data
# and configuration directories, owned by postgres: the container never runs as root.
install -d -o postgres -g postgres -m 2775 /run/postgresql
install -d -o postgres -g postgres -m 0755 /var/lib/postgresql
install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
install -d -o root -g postgres -m 0750 /etc/tusker

# tuskerctl is tusker under another name (cmd/tusker/ctl.go): one copy of the binary, which the
# Dockerfile copies in after this step.
ln -sf tusker /usr/local/bin/tuskerctl
