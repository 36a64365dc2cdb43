#!/usr/bin/env bash
# Deployment targets end to end (issue: convert + check):
#  - tiny-qwen3-vl W8A8 -> convert to vllm-ascend, vllm-mindspore (910 and, from a float16
#    export, 310) and mindie -> cslim check --target passes (with the float source:
#    weights and an end-to-end comparison), and forward / eval give the same logits and
#    perplexity as before the conversion; converting back restores the original numbers;
#  - quant --target writes the layout directly; check --json; exit codes.
# usage: cli_deploy.sh CSLIM ST_COMPARE
CSLIM=$1
CMP=$2
FX=${CSLIM_FIXTURES:?}
. "$(dirname "$0")/cli_lib.sh"
VL=$FX/models/tiny-qwen3-vl
IMGS=$FX/../calib/images
TEXT=$FX/text/eval.txt
IN=$FX/refs/tiny-qwen3_ref.safetensors

logits() { "$CSLIM" forward --model_path "$1" --inputs "$IN" --output "$2" --quiet; }
ppl() { "$CSLIM" eval ppl --model_path "$1" --text "$TEXT" --windows 4 --quiet | sed -n 's/^ppl: //p'; }

run "$CSLIM" quant --model_path "$VL" --save_path "$TMP/q" --quant_type w8a8 --calib_data "$IMGS" --holdout 0
expect_rc 0 "quantize tiny-qwen3-vl W8A8"
logits "$TMP/q" "$TMP/q.st" || fail "forward on the quantized model"
P0=$(ppl "$TMP/q")

# convert_and_check TARGET DIR [SOC]
convert_and_check() {
  local t=$1 out=$2 soc=${3:-910} src=${4:-$TMP/q}
  run "$CSLIM" convert --model_path "$src" --save_path "$out" --target "$t" --soc "$soc" --source "$VL"
  expect_rc 0 "convert to $t ($soc)"
  run "$CSLIM" check --model_path "$out" --target "$t" --soc "$soc" --source "$VL"
  expect_rc 0 "check --target $t ($soc) on the converted model"
  expect_out "0 errors" "check --target $t"
}

for t in vllm-ascend vllm-mindspore mindie; do
  convert_and_check "$t" "$TMP/$t"
  logits "$TMP/$t" "$TMP/$t.st" || fail "$t: forward on the converted model"
  "$CMP" "$TMP/$t.st" logits "$TMP/q.st" logits 1e-12 >/dev/null || fail "$t: logits differ from before the conversion"
  [ "$(ppl "$TMP/$t")" = "$P0" ] || fail "$t: perplexity differs from before the conversion"
done
[ -f "$TMP/vllm-mindspore/quant_model_weight_w8a8.safetensors" ] || fail "vllm-mindspore: weight file name"
[ -f "$TMP/vllm-mindspore/model.safetensors.index.json" ] || fail "vllm-mindspore: index"
grep -q '"model.language_model.layers.0.self_attn.q_proj.input_scale"' "$TMP/vllm-mindspore/model.safetensors.index.json" ||
  fail "vllm-mindspore: index lacks a tensor"
[ -f "$TMP/vllm-ascend/quant_model_weights.safetensors" ] || fail "vllm-ascend: weight file name"
[ -f "$TMP/mindie/quant_model_description_w8a8.json" ] || fail "mindie: legacy description name"
grep -q '"quantize": "w8a8"' "$TMP/mindie/config.json" || fail "mindie: config.json quantize"
"$CSLIM" inspect --model_path "$TMP/vllm-mindspore" --full | grep -m1 'self_attn.k_proj.input_offset' | grep -q 'BF16' ||
  fail "vllm-mindspore 910: input_offset is not bfloat16"

# re-targeted again: back to the v1 layout, same numbers
convert_and_check vllm-ascend "$TMP/back" 910 "$TMP/vllm-mindspore"
logits "$TMP/back" "$TMP/back.st" && "$CMP" "$TMP/back.st" logits "$TMP/q.st" logits 1e-12 >/dev/null ||
  fail "vllm-mindspore -> vllm-ascend: logits differ"

# the 310: a float16 export, deq_scale float32 from the int64 bit pattern, float16 offsets
run "$CSLIM" quant --model_path "$VL" --save_path "$TMP/q16" --quant_type w8a8 --calib_data "$IMGS" --holdout 0 --save_dtype float16
expect_rc 0 "quantize float16"
"$CSLIM" inspect --model_path "$TMP/q16" --full | grep -m1 'self_attn.q_proj.deq_scale' | grep -q 'I64' ||
  fail "float16 export: deq_scale is not int64"
convert_and_check vllm-mindspore "$TMP/ms310" 310 "$TMP/q16"
"$CSLIM" inspect --model_path "$TMP/ms310" --full | grep -m1 'self_attn.q_proj.deq_scale' | grep -q 'F32' ||
  fail "310: deq_scale is not float32"
"$CSLIM" inspect --model_path "$TMP/ms310" --full | grep -m1 'self_attn.q_proj.input_offset' | grep -q 'F16' ||
  fail "310: input_offset is not float16"
logits "$TMP/q16" "$TMP/q16.st" && logits "$TMP/ms310" "$TMP/ms310.st" &&
  "$CMP" "$TMP/ms310.st" logits "$TMP/q16.st" logits 1e-12 >/dev/null || fail "310: logits differ"
run "$CSLIM" convert --model_path "$TMP/q" --save_path "$TMP/x" --target vllm-mindspore --soc 310
expect_rc 1 "310 from a bfloat16 export"
expect_err "the 310 serves float16 only" "310 from a bfloat16 export"

# quant --target writes the layout directly
run "$CSLIM" quant --model_path "$VL" --save_path "$TMP/direct" --quant_type w8a8 --calib_data "$IMGS" --holdout 0 \
  --target vllm-mindspore
expect_rc 0 "quant --target vllm-mindspore"
[ -f "$TMP/direct/model.safetensors.index.json" ] || fail "quant --target: not the vllm-mindspore layout"
ls -d "$TMP"/direct.cslim-quant-* >/dev/null 2>&1 && fail "quant --target left its intermediate directory"
run "$CSLIM" check --model_path "$TMP/direct" --target vllm-mindspore --json
expect_rc 0 "check --json"
expect_out '"ok": true' "check --json"

# the msModelSlim layout checked for vllm-mindspore: one line per problem, exit 1
run "$CSLIM" check --model_path "$TMP/q" --target vllm-mindspore
expect_rc 1 "unconverted checkpoint for vllm-mindspore"
expect_out "expects a float [256]" "unconverted checkpoint for vllm-mindspore"
run "$CSLIM" check --model_path "$TMP/q" --target vllm-mindspore --json
expect_out '"ok": false' "check --json on a failing checkpoint"
run "$CSLIM" convert --model_path "$TMP/q" --save_path "$TMP/x" --target tensorrt
expect_rc 2 "unknown target"
[ ! -e "$TMP/x" ] || fail "a refused run left output"

finish
