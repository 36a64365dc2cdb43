#!/usr/bin/env bash
# Issue 10's speed acceptance, on a machine with a CUDA device and a CUDA build:
#   bench/gpu_8b.sh BUILD_DIR FIXTURES_DIR [WORK_DIR] [GEMMS]
# A random-weight checkpoint with Qwen3-8B's exact shapes (36 layers, 16.4 GB bf16; bench/synth_model),
# 64 calibration samples of 512 tokens (cut from the fixtures' held-out text), W8A8 min-max,
# `cslim quant --device cuda --gpu_gemm G` for each G in GEMMS (default "fp32 bf16"), page cache
# dropped before each run when we may (root). Prints the disk's cold read rate, each run's summary,
# and the calibration forward's achieved TFLOP/s (the GEMM FLOPs of both passes over the forward time).
# PRESET=qwen3-30b-a3b LAYERS=8 runs the same on the MoE preset (its TFLOP/s count the experts'
# GEMMs: gate/up in the float pass, gate/up/down in the quantized one); DEV=cuda:0,1 on several GPUs.
# PRESET=qwen3-vl-30b-a3b: the same text model with the Hub's fused experts (calibrated on text; its
# vision tower is copied; the experts are transposed on the GPU). EXTRA="--anti_method m6" (or m2) adds
# flags to every run (then the TFLOP/s count the forward's GEMMs only, not the smoothing's search);
# QFLAGS="--model_type Qwen3-30B --config_path recipes/default/default-w8a8.yaml" replaces the
# default "--quant_type w8a8" (a recipe's run).
set -u
B=${1:-build}
FX=${2:-../shared/fixtures}
W=${3:-/tmp/gpu8b}
GEMMS=${4:-fp32 bf16}
mkdir -p "$W"
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
PRESET=${PRESET:-qwen3-8b}
LAYERS=${LAYERS:-}
M=$W/$PRESET${LAYERS:+-$LAYERS}-synth
if [ ! -f "$M/config.json" ]; then
  t0=$(date +%s.%N)
  "$B/bench/synth_model" --preset "$PRESET" ${LAYERS:+--layers "$LAYERS"} --out "$M" \
    --tokenizer "$FX/models/tiny-qwen3/tokenizer.json" >/dev/null || exit 1
  echo "synthesised $(du -sh "$M" | cut -f1) in $(calc "$(date +%s.%N) - $t0") s"
fi
# 64 samples of 3000 characters (> 512 tokens each), JSONL
awk 'BEGIN { RS = "\0" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, " "); gsub(/\r?\n/, "\\n");
     for (i = 0; i < 64; i++) printf "{\"text\": \"%s\"}\n", substr($0, 1 + i * 3000, 3000) }' \
  "$FX/text/eval.txt" >"$W/calib.jsonl"
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && echo dropped || echo warm; }
state=$(drop)
if [ "$state" = dropped ]; then
  t0=$(date +%s.%N)
  cat "$M"/*.safetensors >/dev/null
  t=$(calc "$(date +%s.%N) - $t0")
  bytes=$(du -cb "$M"/*.safetensors | tail -1 | cut -f1)
  echo "cold read of the checkpoint: $(calc "$bytes / $t / 1e9") GB/s ($t s for $bytes bytes)"
else
  echo "page cache could not be dropped (not root): runs read a warm cache"
fi
# GEMM FLOPs of the calibration forward: pass 1 (float: q, k, v, o, gate, up) + pass 3 (all seven), 32768 tokens;
# a MoE layer: the router in both passes and each token's K experts (gate/up, then gate/up/down)
TOK=32768
case $PRESET in
qwen3-8b) H=4096 Q=4096 KV=1024 L=36 mlp="5 * $H * 12288" ;;
qwen3-30b-a3b | qwen3-vl-30b-a3b) H=2048 Q=4096 KV=512 L=48 mlp="2 * $H * 128 + 8 * 5 * $H * 768" ;;
*) H=0 ;;
esac
L=${LAYERS:-$L}
# + attention, causal FLOPs only (Q.K^T and P.V: 2 * 2 * D per query-key pair, n(n+1)/2 pairs per head): 64 x 512
flops=$(calc "$L * (2 * $TOK * (2 * ($H * ($Q + 2 * $KV) + $Q * $H) + $mlp) + 2 * 64 * 32 * 4 * 128 * 512 * 513 / 2)")
for G in $GEMMS; do
  rm -rf "$W/out"
  echo "== --gpu_gemm $G (page cache: $(drop))"
  /usr/bin/time -f "wall %e s, max RSS %M KB" "$B/cslim" quant --model_path "$M" --save_path "$W/out" ${QFLAGS:---quant_type w8a8} \
    --calib_data "$W/calib.jsonl" --calib_seq_len 512 --holdout 0 --device "${DEV:-cuda}" --gpu_gemm "$G" ${EXTRA:-} >"$W/log-$G" 2>&1 ||
    { tail -3 "$W/log-$G"; exit 1; }
  grep -E "calibration:|device:|transforms:|time |wall" "$W/log-$G"
  fwd=$(sed -n 's/.*forward \([0-9.]*\),.*/\1/p' "$W/log-$G")
  [ "$H" != 0 ] &&
    echo "forward GEMMs: $(calc "$flops / 1e12") TFLOP in $fwd s = $(calc "$flops / $fwd / 1e12") TFLOP/s"
  # the smoothing search's products on the dense preset, per subgraph on the 512 default --anti_tokens rows (one
  # sequence here): m6 43 fp32 products (42 candidates, the reference): q/k/v [Q + 2 KV, H], o [H, Q], gate/up
  # [2 I, H], down [H, I]; m2 30 evaluations (29 candidates, the reference): q/k/v and causal attention, or gate/up
  # and down
  sm= sf=
  case "${EXTRA:-}" in
  *m6*) sm=m6 sf=$(calc "$L * 43 * 2 * 512 * ($H * ($Q + 2 * $KV) + $Q * $H + 2 * 12288 * $H + $H * 12288)") ;;
  *m2*) sm=m2 sf=$(calc "$L * 30 * (2 * 512 * ($H * ($Q + 2 * $KV) + 3 * 12288 * $H) + 4 * 128 * 32 * 512 * 513 / 2)") ;;
  esac
  if [ -n "$sm" ] && [ "$PRESET" = qwen3-8b ]; then
    tr=$(sed -n 's/.*transforms: .*(\([0-9.]*\) s).*/\1/p' "$W/log-$G")
    echo "$sm search GEMMs: $(calc "$sf / 1e12") TFLOP in the transforms' $tr s = $(calc "$sf / $tr / 1e12") TFLOP/s" \
      "(the fp32 peak is 67 TFLOP/s; the rest of that time is the host's)"
  fi
done
rm -rf "$W/out"
