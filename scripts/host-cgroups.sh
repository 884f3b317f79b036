#!/usr/bin/env bash
# Makes a hybrid cgroup layout (a v1 hierarchy per controller, plus a v2 mount beside it) one that
# crun, runc and the kubelet accept: every controller the kernel has is bound to a v1 hierarchy,
# and the v2 mount keeps none. On such a machine a controller that no v1 hierarchy claims (often
# hugetlb) shows up in the v2 mount's cgroup.controllers, and crun then refuses every container.
# A pure v2 or pure v1 machine is left alone. Idempotent; needs root when it has work to do.
set -euo pipefail
v2=/sys/fs/cgroup/unified
[ -f "$v2/cgroup.controllers" ] || exit 0
[ -d /sys/fs/cgroup/memory ] || exit 0 # not hybrid: the v1 controllers are not mounted
for c in $(cat "$v2/cgroup.controllers"); do
	mkdir -p "/sys/fs/cgroup/$c"
	if ! mountpoint -q "/sys/fs/cgroup/$c"; then
		mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
		echo "host-cgroups: mounted the $c controller as a v1 hierarchy at /sys/fs/cgroup/$c" >&2
	fi
done
left=$(cat "$v2/cgroup.controllers")
if [ -n "$left" ]; then
	echo "host-cgroups: the cgroup v2 mount $v2 still holds controllers ($left): containers cannot start" >&2
	exit 1
fi
