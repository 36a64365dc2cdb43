#!/usr/bin/env bash
# CPU vs GPU calibration parity (issue 10's acceptance 4) on the fixture models, on a machine with a
# CUDA device and a CUDA build:
#   bench/gpu_parity.sh BUILD_DIR FIXTURES_DIR CALIB_FILE
# For tiny-qwen3 and tiny-qwen3-moe, W8A8 with the same calibration set on --device cpu and
# --device cuda: scales within 1e-3 relative, < 0.1 % of the integer codes different, perplexity
# within 0.2 %; prints the times of both runs.
set -u
B=${1:-build}
FX=${2:-../shared/fixtures}
CALIB=${3:-data/calib/mix_calib.jsonl}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rc=0
for M in tiny-qwen3 tiny-qwen3-moe; do
  for d in cpu cuda; do
    /usr/bin/time -f "$M $d: %e s wall" "$B/cslim" quant --model_path "$FX/models/$M" --save_path "$T/$M-$d" \
      --quant_type w8a8 --calib_data "$CALIB" --holdout 4 --device "$d" --quiet >"$T/log-$M-$d" 2>&1 ||
      { echo "$M $d: quant failed: $(tail -2 "$T/log-$M-$d")"; rc=1; continue; }
    grep -E "device:|KL|wall" "$T/log-$M-$d" | sed "s/^/  $M $d:/"
    tail -1 "$T/log-$M-$d" | grep -q wall || true
  done
  "$B/bench/ckpt_diff" "$T/$M-cpu" "$T/$M-cuda" 1e-3 1e-3 | sed "s/^/  $M: /" || rc=1
  p0=$("$B/cslim" eval ppl --model_path "$T/$M-cpu" --text "$FX/text/eval.txt" --windows 64 --quiet | sed -n 's/^ppl: //p')
  p1=$("$B/cslim" eval ppl --model_path "$T/$M-cuda" --text "$FX/text/eval.txt" --windows 64 --quiet | sed -n 's/^ppl: //p')
  ok=$(awk -v a="$p0" -v b="$p1" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; printf "%s %.4f %%", d <= 0.002 ? "ok" : "FAIL", 100 * d }')
  echo "  $M: perplexity cpu $p0, cuda $p1: $ok"
  case $ok in FAIL*) rc=1 ;; esac
done
exit $rc
