#!/usr/bin/env bash
# bench/device.sh: the scaling run of `mflow bench` on a larger machine
# (16 cores, no iproute2 or ethtool needed), in about 4 minutes.
#
# Usage, from the repository root, as root:
#   CGO_ENABLED=0 go build -o .carry/mflow ./cmd/mflow
#   OUT=/some/dir bench/device.sh            # DURATION=1s REPS=3 by default
#
# It writes at most 8 files into $OUT (no subfolders): report.json,
# results.csv, report.md, run.log (progress and the table) and the PNG
# plots fig8a_udp_size.png, fig10_flows.png, fig7_reorder.png,
# workers.png. A hard limit (LIMIT seconds, default 330) stops the run
# with SIGTERM; the harness then removes its namespaces and still writes
# what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.carry/mflow}
OUT=${OUT:-/tmp/mflow-bench-device}
DURATION=${DURATION:-1s}
REPS=${REPS:-3}
LIMIT=${LIMIT:-330}
MODES=${MODES:-kernel,kernel-rps,single,microflow,ceiling}
WORKERS=${WORKERS:-1,2,4,8}
SIZES=${SIZES:-64,256,1422}
FLOWS=${FLOWS:-1,4,16}
TCP=${TCP:-65536}
# The Fig. 7 sweep through the daemon (12 testbeds) does not fit the
# device's time; REORDER_WIRE=true adds it (and fig7_wire_reorder.png).
REORDER_WIRE=${REORDER_WIRE:-false}
# DEVICES=tap,veth also measures every mflow mode with a veth device.
DEVICES=${DEVICES:-tap}

mkdir -p "$OUT"
log="$OUT/run.log"
{
	echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs"
	grep -m1 'model name' /proc/cpuinfo || true
	echo "# $BIN bench --modes $MODES --devices $DEVICES --workers $WORKERS --sizes $SIZES --flows $FLOWS --tcp-sizes $TCP --rates '' --reorder-batches 1,4,16,64,256,1024 --reorder-workers 4 --reorder-wire=$REORDER_WIRE --duration $DURATION --reps $REPS --gen-cpus 0 --out $OUT"
} >"$log"

# --rates '': no latency steps (they need several rates to plot);
# --reorder-workers 4: Fig. 7 with four workers, in memory.
timeout -s TERM -k 20 "$LIMIT" "$BIN" bench \
	--modes "$MODES" --devices "$DEVICES" --workers "$WORKERS" --sizes "$SIZES" --flows "$FLOWS" \
	--tcp-sizes "$TCP" --rates '' \
	--reorder-batches 1,4,16,64,256,1024 --reorder-workers 4 --reorder-wire="$REORDER_WIRE" \
	--duration "$DURATION" --reps "$REPS" --gen-cpus 0 --out "$OUT" >>"$log" 2>&1
rc=$?
echo "# exit status $rc" >>"$log"
# Leftover namespaces would mean a cleanup bug: report them.
ls /run/netns 2>/dev/null | grep '^mfbench-' >>"$log" && echo "# WARNING: namespaces left behind" >>"$log"
ls -l "$OUT" >>"$log"
exit $rc
