#!/usr/bin/env bash
# compare.sh: detached CAdES-B verification rate of crypto/cms against
# openssl, per core, side by side.
#
# Ours:    go test -bench BenchmarkVerifyDetached -cpu 1 (parse + verify one
#          4 KiB document: message digest, signed attributes, signature,
#          ESSCertIDv2), documents per CPU-second.
# openssl: (a) `openssl speed` verify/s of the bare signature primitive,
#          the upper bound of any CMS verifier, and (b) `openssl cms -verify
#          -binary -noverify -content` on the same files in a loop, which
#          includes process start-up and is shown for reference only.
# Usage: crypto/cms/bench/compare.sh [loop-count]
set -euo pipefail
cd "$(dirname "$0")/../../.."
loops=${1:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "# go test -bench (1 CPU) ..." >&2
BENCH_OUT_DIR="$work" go test -run '^$' -bench 'BenchmarkVerifyDetached' -benchtime 2s -cpu 1 ./crypto/cms/ >"$work/go.txt"

echo "# openssl speed ..." >&2
openssl speed -seconds 3 rsa2048 ecdsap256 ecdsabrp256r1 2>/dev/null >"$work/speed.txt"

# docs per CPU-second (the benchmark's docs/cpu-s metric): openssl speed
# also divides by CPU time, so both stay comparable when the machine is busy.
ours() { awk -v n="BenchmarkVerifyDetached/$1" '$1==n {for (i=1;i<NF;i++) if ($(i+1)=="docs/cpu-s") printf "%.0f", $i}' "$work/go.txt"; }
speed_rsa=$(awk '/^rsa 2048 bits/ {print $NF}' "$work/speed.txt")
speed_p256=$(awk '/ecdsa \(nistp256\)/ {print $NF}' "$work/speed.txt")
speed_bp=$(awk '/ecdsa \(brainpoolP256r1\)/ {print $NF}' "$work/speed.txt")

cms_loop() {
	local f=$1 start end
	start=$(date +%s.%N)
	for _ in $(seq "$loops"); do
		openssl cms -verify -binary -noverify -inform DER -in "$work/$f.p7s" -content "$work/content.bin" -out /dev/null 2>/dev/null
	done
	end=$(date +%s.%N)
	echo "$loops / ($end - $start)" | bc -l | xargs printf "%.0f"
}

printf "%-16s %12s %16s %10s %18s\n" "algorithm" "ours docs/s" "openssl speed/s" "ratio" "openssl cms loop/s"
for alg in rsa2048 p256 brainpoolP256r1; do
	o=$(ours "$alg")
	case $alg in
	rsa2048) s=$speed_rsa ;;
	p256) s=$speed_p256 ;;
	brainpoolP256r1) s=$speed_bp ;;
	esac
	loop=$(cms_loop "$alg")
	printf "%-16s %12s %16.0f %9.0f%% %18s\n" "$alg" "$o" "$s" "$(echo "100*$o/$s" | bc -l)" "$loop"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); both rates are per CPU-second; the cms loop column is wall time"
