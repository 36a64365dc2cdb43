#!/usr/bin/env bash
# CPU vs GPU calibration parity (issue 10's acceptance 4) on the fixture models, on a machine with a
# CUDA device and a CUDA build:
#   [DEV=cuda:0,1] [CASES="dense-w8a8 moe-w8a8"] bench/gpu_parity.sh BUILD_DIR FIXTURES_DIR CALIB_FILE [GEMM]
# (CSLIM_CUDA_SHARES=2 with one GPU runs the several-GPU path on it: the samples split in two shares,
# a context and a thread each, the statistics merged through host memory instead of NCCL.)
# Each case quantizes with the same calibration set on --device cpu and --device cuda (GEMM: fp32,
# the default, tf32 or bf16) and compares the checkpoints: scales within 1e-3 relative, < 0.1 % of
# the integer codes different, perplexity within 0.2 %. tiny-qwen3 runs whole on the GPU (W8A8
# min-max and histogram, W8A8_DYNAMIC, W8A16, W4A8_DYNAMIC min-max and SSZ), and so does
# tiny-qwen3-moe (W8A8 min-max and histogram, every expert calibrated on all tokens, W8A8_DYNAMIC,
# W8A16, W4A8 SSZ, one expert kept float, the experts split into many waves), with m1 / m4
# smoothing and QuaRot (statistics on the GPU, weights transformed on the host; a separate smoothing
# set, --anti_data, on the GPU too, of text or of images), m2 / m6 (their
# samples from the GPU, both searches on the GPU) and the default recipe
# (iter_smooth; on the MoE model every expert's up-down, its statistics from the GPU's MoE block, its
# scales applied to the experts on the GPU). tiny-qwen3-vl calibrates on the images of IMAGES (default
# FIXTURES_DIR/../calib/images: the deepstack features added on the GPU), and a Qwen3-VL-MoE made
# from it (bench/vl_moe_model: the Hub's fused [E, H, 2I] experts, transposed on the GPU) on text and
# on images, and W8A8S (the sparse quantizer on the host, its codes uploaded). With fp32 GEMMs every case
# should be identical to the CPU's (ordered products, model/repro.h). Prints each run's device line and time.
set -u
B=${1:-build}
FX=${2:-../shared/fixtures}
CALIB=${3:-data/calib/mix_calib.jsonl}
GEMM=${4:-fp32}
DEV=${DEV:-cuda} # the GPU side: cuda, cuda:N or cuda:N,M,...
IMAGES=${IMAGES:-$FX/../calib/images}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rc=0
# name model flags... (model: a fixture's name, or a path; CAL=... a case's own calibration set;
# ROUTE=... the GPU run's expected device line, "decoder layers on the GPU" unless said: a run that
# fell back to another route fails its case, whatever its checkpoint)
run_case() {
  local name=$1 M=$2
  case $M in */*) ;; *) M=$FX/models/$M ;; esac
  case " ${CASES:-$name} " in *" $name "*) ;; *) return ;; esac
  shift 2
  for d in cpu cuda; do
    local extra=()
    local dev=cpu
    [ "$d" = cuda ] && extra=(--gpu_gemm "$GEMM") && dev=$DEV
    /usr/bin/time -f "%e s wall" -o "$T/time-$name-$d" "$B/cslim" quant --model_path "$M" \
      --save_path "$T/$name-$d" --calib_data "${CAL:-$CALIB}" --holdout 4 --device "$dev" "${extra[@]}" "$@" \
      >"$T/log-$name-$d" 2>&1 || { echo "$name $d: quant failed: $(tail -2 "$T/log-$name-$d")"; rc=1; return; }
    echo "  $name $d: $(grep -E "device:" "$T/log-$name-$d" | sed 's/^ *//'); $(cat "$T/time-$name-$d")"
  done
  local route=${ROUTE:-decoder layers on the GPU}
  grep -q "device:.*$route" "$T/log-$name-cuda" || { echo "  $name: FAIL: the GPU run did not take the route \"$route\""; rc=1; }
  "$B/bench/ckpt_diff" "$T/$name-cpu" "$T/$name-cuda" 1e-3 1e-3 | sed "s/^/  $name: /" || rc=1
  p0=$("$B/cslim" eval ppl --model_path "$T/$name-cpu" --text "$FX/text/eval.txt" --windows 64 --quiet | sed -n 's/^ppl: //p')
  p1=$("$B/cslim" eval ppl --model_path "$T/$name-cuda" --text "$FX/text/eval.txt" --windows 64 --quiet | sed -n 's/^ppl: //p')
  ok=$(awk -v a="$p0" -v b="$p1" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; printf "%s %.4f %%", d <= 0.002 ? "ok" : "FAIL", 100 * d }')
  echo "  $name: perplexity cpu $p0, cuda $p1: $ok"
  case $ok in FAIL*) rc=1 ;; esac
}
run_case dense-w8a8 tiny-qwen3 --quant_type w8a8
run_case dense-w8a8-hist tiny-qwen3 --quant_type w8a8 --act_method 2
run_case dense-w8a8-dynamic tiny-qwen3 --quant_type w8a8_dynamic
run_case dense-w8a16 tiny-qwen3 --quant_type w8a16
run_case dense-w4a8-minmax tiny-qwen3 --quant_type w4a8_dynamic --w_method minmax
run_case dense-w4a8-ssz tiny-qwen3 --quant_type w4a8_dynamic
run_case dense-w8a8-m4 tiny-qwen3 --quant_type w8a8 --anti_method m4
run_case dense-w8a8-m1 tiny-qwen3 --quant_type w8a8 --anti_method m1
run_case dense-w8a8-rot-m4 tiny-qwen3 --quant_type w8a8 --rot True --anti_method m4
run_case dense-w8a8-m2 tiny-qwen3 --quant_type w8a8 --anti_method m2
run_case dense-w8a8-m6 tiny-qwen3 --quant_type w8a8 --anti_method m6
run_case dense-w8a8-rot-m2 tiny-qwen3 --quant_type w8a8 --rot True --anti_method m2
run_case dense-recipe-default tiny-qwen3 --model_type Qwen3-8B --config_path recipes/default/default-w8a8.yaml
# a separate smoothing set (--anti_data): on the GPU beside the calibration rows, its statistics (and
# m6's samples) observed there, carried through each quantized layer
ANTI=data/calib/qwen3-moe_anti_prompt_50.json
run_case dense-w8a8-m4-anti-data tiny-qwen3 --quant_type w8a8 --anti_method m4 --anti_data $ANTI
run_case dense-w8a8-m6-anti-data tiny-qwen3 --quant_type w8a8 --anti_method m6 --anti_data $ANTI
run_case dense-w8a8-m2-anti-data tiny-qwen3 --quant_type w8a8 --anti_method m2 --anti_data $ANTI
run_case moe-w8a8-rot-m4-anti-data tiny-qwen3-moe --quant_type w8a8 --rot True --anti_method m4 --anti_data $ANTI
run_case moe-w8a8-m6-anti-data tiny-qwen3-moe --quant_type w8a8 --anti_method m6 --anti_data $ANTI
run_case moe-w8a8 tiny-qwen3-moe --quant_type w8a8
run_case moe-w8a8-rot-m4 tiny-qwen3-moe --quant_type w8a8 --rot True --anti_method m4
run_case moe-w8a8-m2 tiny-qwen3-moe --quant_type w8a8 --anti_method m2
run_case moe-w8a8-m6 tiny-qwen3-moe --quant_type w8a8 --anti_method m6
# iter_smooth as v1 runs it smooths every expert's up -> down (per-channel expert statistics from the MoE block)
run_case moe-recipe-default tiny-qwen3-moe --model_type Qwen3-30B --config_path recipes/default/default-w8a8.yaml
run_case moe-w8a8-hist tiny-qwen3-moe --quant_type w8a8 --act_method 2
run_case moe-w8a8-all-tokens tiny-qwen3-moe --quant_type w8a8 --expert_min_tokens 100000
run_case moe-w8a8-dynamic tiny-qwen3-moe --quant_type w8a8_dynamic
run_case moe-w8a16 tiny-qwen3-moe --quant_type w8a16
# one expert's down_proj kept float: layer 0's down projections run expert by expert (kinds differ)
run_case moe-w8a8-mixed tiny-qwen3-moe --quant_type w8a8 --disable_names model.layers.0.mlp.experts.3.down_proj
# every expert a wave of its own (the GPU's grouping must not change a bit)
CSLIM_GPU_MOE_WAVE=128 run_case moe-w8a8-waves tiny-qwen3-moe --quant_type w8a8 --act_method 2
run_case moe-w4a8-ssz tiny-qwen3-moe --quant_type w4a8_dynamic
# W8A8S: the sparse weight quantizer runs on the host, the layer on the GPU with its codes
run_case dense-w8a8s tiny-qwen3 --quant_type w8a8s
run_case moe-w8a8s tiny-qwen3-moe --quant_type w8a8s --fraction 0.05
CAL=$IMAGES run_case vl-w8a8-images tiny-qwen3-vl --quant_type w8a8
CAL=$IMAGES run_case vl-w8a8-rot-m4-images tiny-qwen3-vl --quant_type w8a8 --rot True --anti_method m4
# m2 on images (msModelSlim's multimodal default): its search's attention on the image rows' MRoPE tables
CAL=$IMAGES run_case vl-w8a8-m2-images tiny-qwen3-vl --quant_type w8a8 --anti_method m2
# a smoothing set of images: on the GPU beside the calibration rows, its deepstack features added there
CAL=$IMAGES run_case vl-w8a8-m4-anti-images tiny-qwen3-vl --quant_type w8a8 \
  --anti_method m4 --anti_data "$IMAGES"
# ... of images beside text calibration rows, and of text beside images (m6, m2: their samples from it)
run_case vl-w8a8-m6-text-anti-images tiny-qwen3-vl --quant_type w8a8 --anti_method m6 --anti_data "$IMAGES"
CAL=$IMAGES run_case vl-w8a8-m2-images-anti-text tiny-qwen3-vl --quant_type w8a8 --anti_method m2 --anti_data $ANTI
case " ${CASES:-vl-moe} " in *" vl-moe"*)
  "$B/bench/vl_moe_model" --from "$FX/models/tiny-qwen3-vl" --out "$T/tiny-qwen3-vl-moe" >/dev/null || rc=1 ;;
esac
run_case vl-moe-w8a8 "$T/tiny-qwen3-vl-moe" --quant_type w8a8
CAL=$IMAGES run_case vl-moe-w8a8-images "$T/tiny-qwen3-vl-moe" --quant_type w8a8 --act_method 2
# every expert's up-down without rotation on the fused experts: they go up as stored (transposed on
# the GPU) for the statistics, and the smoothing's scales are applied there (scale_weight)
run_case vl-moe-recipe-default "$T/tiny-qwen3-vl-moe" --model_type Qwen3-VL-30B-A3B \
  --config_path recipes/default/default-w8a8.yaml
# the Qwen3-VL-MoE best practice: QuaRot (32-blocks), iter_smooth with every expert's up-down, images
CAL=$IMAGES run_case vl-moe-recipe "$T/tiny-qwen3-vl-moe" --model_type Qwen3-VL-30B-A3B \
  --config_path recipes/qwen3_vl_moe/qwen3_vl_moe_w8a8.yaml
exit $rc
