#!/usr/bin/env bash
# make fuzz: runs every fuzz target of the module (every "func Fuzz..." in a *_test.go), one at a
# time, for FUZZTIME each, then keeps what it found as seeds of the plain `go test` runs.
#
# Go writes only failing inputs into the package's testdata/fuzz/<FuzzName>/; the inputs that
# reached new code go to $(go env GOCACHE)/fuzz/<import path>/<FuzzName>/, where `go test` never
# looks. So after each target some of those (up to FUZZKEEP files of at most FUZZMAXBYTES bytes per
# target in testdata, spread over their sizes) are copied into testdata/fuzz/<FuzzName>/, which
# `go test` then runs as seeds. Commit them with the code.
#
#   FUZZTIME          how long each target runs (default 30s; any -fuzztime value)
#   FUZZPARALLEL      fuzzing workers per target (default 2: the build machine has 2 cores)
#   FUZZMINIMIZETIME  how long Go may minimise each new input (default 5s; Go's 60s would eat a
#                     short run minimising one input)
#   FUZZKEEP          corpus files kept per target in testdata (default 16)
#   FUZZMAXBYTES      the largest corpus file kept (default 2048)
#   FUZZ              a regular expression: only the targets whose name matches
#
# A failing target does not stop the others: the script reports every failure at the end and exits
# non-zero; the failing input stays in testdata/fuzz/<FuzzName>/ as a seed (fix the code, keep it).
set -euo pipefail

FUZZTIME=${FUZZTIME:-30s}
FUZZPARALLEL=${FUZZPARALLEL:-2}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}
FUZZKEEP=${FUZZKEEP:-16}
FUZZMAXBYTES=${FUZZMAXBYTES:-2048}
FUZZ=${FUZZ:-.}
GO=${GO:-go}

cd "$(dirname "$0")/.."
module=$($GO list -m)
cache=$($GO env GOCACHE)/fuzz

# "dir name" per target, sorted, from the tracked and untracked test files alike.
mapfile -t targets < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | awk -v re="$FUZZ" '$2 ~ re' | sort -u)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz target matches FUZZ=$FUZZ" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, $FUZZPARALLEL workers"

# keep copies interesting inputs of one target from Go's cache into testdata: those not kept
# already (Go names a corpus file by a hash of its content, so the same name is the same input),
# of at most FUZZMAXBYTES, until the target has FUZZKEEP files, spread evenly over their sizes so
# that the small and the large ones are both among the seeds.
keep() {
	local dir=$1 name=$2
	local src=$cache/$module/$dir/$name dst=$dir/testdata/fuzz/$name
	[ -d "$src" ] || return 0
	mkdir -p "$dst"
	local have room
	have=$(find "$dst" -type f | wc -l)
	room=$((FUZZKEEP - have))
	local cands=()
	while IFS= read -r f; do
		[ -e "$dst/$(basename "$f")" ] || cands+=("$f")
	done < <(find "$src" -type f -size -"$((FUZZMAXBYTES + 1))"c -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
	local n=${#cands[@]} added=0 i
	if [ "$room" -gt 0 ] && [ "$n" -gt 0 ]; then
		local k=$((room < n ? room : n))
		for ((i = 0; i < k; i++)); do
			cp "${cands[$((i * n / k))]}" "$dst/"
			added=$((added + 1))
		done
	fi
	rmdir "$dst" 2>/dev/null || true
	echo "fuzz: $name: kept $added new inputs ($(find "$dst" -type f 2>/dev/null | wc -l) in $dst)"
}

failed=()
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	echo "fuzz: $dir $name"
	if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" \
		-parallel "$FUZZPARALLEL" "./$dir"; then
		failed+=("$dir $name")
		echo "fuzz: $name FAILED; the failing input is in $dir/testdata/fuzz/$name/" >&2
	fi
	keep "$dir" "$name"
done

total=$(find . -path '*/testdata/fuzz/*' -type f -not -path './.git/*' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
echo "fuzz: the corpus in testdata/fuzz now holds $total bytes"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} targets failed: ${failed[*]}" >&2
	exit 1
fi
