#!/usr/bin/env bash
# run.sh: PAdES verification of a 10 MB signed PDF, ours against DSS, in the
# same run and on the same file.
#
# Ours: go test -bench BenchmarkVerify10MB (parse, ByteRange, streamed hash
#       of the covered bytes, CMS checks; documents per second) and the peak
#       resident set of a fresh process verifying the file once (VmHWM).
# DSS:  the oracle CLI (test/integration/dss) in batch mode, once with 1 job
#       and once with 1+N jobs of the same file, so that the JVM's start-up
#       cancels out: per-document time = (t(1+N) - t(1)) / N. Peak RSS of the
#       JVM from /usr/bin/time. Runs under the shared lock.
# Usage: crypto/pades/bench/run.sh [N]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../../.."
n=${1:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "# go test -bench ..." >&2
PADES_BENCH_OUT="$work" go test -run '^$' -bench 'BenchmarkVerify10MB' -benchtime 20x ./crypto/pades/ >"$work/go.txt"
ours_docs=$(awk '$1 ~ /^BenchmarkVerify10MB/ {for (i=1;i<NF;i++) if ($(i+1)=="docs/s") print $i}' "$work/go.txt")
ours_rss=$(awk '$1 ~ /^BenchmarkVerify10MB/ {for (i=1;i<NF;i++) if ($(i+1)=="peak-RSS-MB") print $i}' "$work/go.txt")

# jobs files for the oracle: the file and its CA, validated now
mkdir -p "$work/dss/bench"
cp "$work/bench-10mb.pdf" "$work/bench-ca.pem" "$work/dss/bench/"
printf '# name\tsignature\tdetached\ttrust\tat\n' >"$work/one.tsv"
printf 'b0/bench/bench-10mb.pdf\tbench/bench-10mb.pdf\t-\tbench/bench-ca.pem\tnow\n' >>"$work/one.tsv"
cp "$work/one.tsv" "$work/many.tsv"
for i in $(seq "$n"); do
	printf 'b%d/bench/bench-10mb.pdf\tbench/bench-10mb.pdf\t-\tbench/bench-ca.pem\tnow\n' "$i" >>"$work/many.tsv"
done

dss() { # jobs-file -> seconds; peak RSS (kB) into $work/rss
	local start end
	start=$(date +%s.%N)
	/usr/bin/time -f '%M' -o "$work/rss" test/integration/dss/validate.sh --jobs "$1" --corpus "$work/dss" --base "$work/dss" --out "$work/out" >/dev/null 2>"$work/dss.err" ||
		{ cat "$work/dss.err" >&2; exit 1; }
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}
echo "# DSS (waiting for /tmp/poststelle-peers.lock) ..." >&2
exec 9>/tmp/poststelle-peers.lock
flock 9
bash test/integration/dss/build.sh >&2
t1=$(dss "$work/one.tsv")
tn=$(dss "$work/many.tsv")
dss_rss_kb=$(tail -1 "$work/rss")
flock -u 9
dss_sec=$(echo "($tn - $t1) / $n" | bc -l)
dss_docs=$(echo "1 / $dss_sec" | bc -l)

printf "%-10s %12s %14s\n" "verifier" "docs/s" "peak RSS MB"
printf "%-10s %12.2f %14.1f\n" "ours" "$ours_docs" "$ours_rss"
printf "%-10s %12.2f %14.1f\n" "DSS 6.4" "$dss_docs" "$(echo "$dss_rss_kb / 1024" | bc -l)"
printf "ratio ours/DSS: %.1fx documents/s, %.2fx peak RSS\n" "$(echo "$ours_docs / $dss_docs" | bc -l)" \
	"$(echo "$ours_rss / ($dss_rss_kb / 1024)" | bc -l)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
