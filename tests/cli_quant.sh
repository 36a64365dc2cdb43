#!/usr/bin/env bash
# cslim quant from the command line: summary, evaluation of the output,
# usage errors, and an interrupted run that leaves nothing behind.
CSLIM=$1
CMP=$2
SYNTH=$3
. "$(dirname "$0")/cli_lib.sh"
FX=$CSLIM_FIXTURES
CALIB=$FX/../calib/mix_calib.jsonl

run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/q" --quant_type w8a8 \
  --calib_data "$CALIB" --calib_samples 16 --act_method 3 --quiet
expect_rc 0 "quant w8a8"
expect_out "(model_quant_type W8A8)" "quant w8a8"
expect_out "linears: 28 W8A8" "quant w8a8"
expect_out "check on held-back samples" "quant w8a8"
expect_out "top-1 agreement" "quant w8a8"
[ -f "$TMP/q/quant_model_weights.safetensors" ] || fail "no weights written"
[ -f "$TMP/q/quant_model_description.json" ] || fail "no description written"
[ -f "$TMP/q/tokenizer.json" ] || fail "tokenizer not copied"

# the same checkpoint on any machine: another thread count and another BLAS kernel (no FMA) change no byte
# (the float products are ordered fma chains; layer-wise calibration would amplify a last-bit difference)
for M in tiny-qwen3 tiny-qwen3-moe; do
  for v in a b; do
    if [ $v = a ]; then env=(OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=Sandybridge); else env=(OMP_NUM_THREADS=2); fi
    run env "${env[@]}" "$CSLIM" quant --model_path "$FX/models/$M" --save_path "$TMP/r$v" --quant_type w8a8 \
      --act_method 2 --calib_data "$CALIB" --calib_samples 16 --holdout 2 --quiet
    expect_rc 0 "$M: quant w8a8 with ${env[*]}"
  done
  for f in "$TMP/ra"/*.safetensors; do
    cmp -s "$f" "$TMP/rb/${f##*/}" || fail "$M: ${f##*/} differs between 1 thread + OpenBLAS Sandybridge and 2 threads"
  done
  rm -rf "$TMP/ra" "$TMP/rb"
done

run "$CSLIM" eval ppl --model_path "$TMP/q" --text "$FX/text/eval.txt" --windows 8 --quiet
expect_rc 0 "eval the quantized model"
run "$CSLIM" generate --model_path "$TMP/q" --prompt "The Python" --max_new_tokens 6 --quiet
expect_rc 0 "generate with the quantized model"

# the same target again: refused, and the first result is untouched
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/q" --quant_type w8a8_dynamic --quiet
expect_rc 1 "existing output"
expect_err "exists and is not empty" "existing output"

run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --quant_type w9a9
expect_rc 2 "bad quant_type"
expect_err "--quant_type: 'w9a9'" "bad quant_type"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --quant_type w8a8
expect_rc 1 "static without data"
expect_err "needs calibration data" "static without data"
# per-group W4A8 cannot be calibrated through a kernel: refused before anything is read or written
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --quant_type w4a8_dynamic --group_size 64 \
  --calib_data "$CALIB"
expect_rc 1 "per-group W4A8 with calibration data"
expect_err "--group_size 64 with --calib_data: per-group W4A8 has no integer kernel" "per-group W4A8 with calibration data"
[ ! -e "$TMP/x" ] || fail "per-group W4A8 with calibration data: output left behind"
echo '{"*.mlp.*": "w7a7"}' >"$TMP/mix.json"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --mix_cfg "$TMP/mix.json" --calib_data "$CALIB"
expect_rc 1 "bad mix_cfg"
expect_err "mix.json: mix_cfg entry '*.mlp.*'" "bad mix_cfg"
[ ! -e "$TMP/x" ] || fail "output left after a failed run"

# Qwen3-VL calibrated on images (through the float vision tower); the
# vision tower is copied (FLOAT, the Conv3d weight's 5-D shape kept); the
# written model answers an image prompt close to the float reference
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-vl" --save_path "$TMP/vl" --quant_type w8a8 \
  --calib_data "$CSLIM_FIXTURES/../calib/images"
expect_rc 0 "quant tiny-qwen3-vl on images"
expect_err "2 calibration images through the vision tower" "quant tiny-qwen3-vl on images"
expect_out "top-1 agreement" "quant tiny-qwen3-vl on images"
grep -q '"model.visual.patch_embed.proj.weight": "FLOAT"' "$TMP/vl/quant_model_description.json" ||
  fail "vision tower not labelled FLOAT"
run "$CSLIM" forward --model_path "$TMP/vl" --image "$FX/images/astronaut_input.png" --prompt "Describe this image." \
  --output "$TMP/vl_out.safetensors" --quiet
expect_rc 0 "forward --image on the quantized VL model"
"$CMP" "$TMP/vl_out.safetensors" logits "$FX/refs/tiny-qwen3-vl_ref.safetensors" astronaut.logits 0.1 >/dev/null ||
  fail "quantized VL logits more than 10 % from the float reference"

# the vision tower's Linears, by pattern: static W8A8 for the blocks (activation
# ranges from the calibration images), block 1 excluded, mergers dynamic
echo '{"model.visual.*merger*": "w8a8_dynamic"}' >"$TMP/vmix.json"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-vl" --save_path "$TMP/vlv" --quant_type w8a8 \
  --calib_data "$CSLIM_FIXTURES/../calib/images" --quantize_vision --exclude "model.visual.blocks.1.*" \
  --mix_cfg "$TMP/vmix.json" --quiet
expect_rc 0 "quant --quantize_vision"
D=$TMP/vlv/quant_model_description.json
grep -q '"model.visual.blocks.0.attn.qkv.weight": "W8A8"' "$D" || fail "vision block 0 not W8A8"
grep -q '"model.visual.blocks.1.attn.qkv.weight": "FLOAT"' "$D" || fail "excluded vision block 1 not FLOAT"
grep -q '"model.visual.merger.linear_fc1.weight": "W8A8_DYNAMIC"' "$D" || fail "merger not W8A8_DYNAMIC"
grep -q '"model.visual.patch_embed.proj.weight": "FLOAT"' "$D" || fail "patch embedding not FLOAT"
run "$CSLIM" forward --model_path "$TMP/vlv" --image "$FX/images/astronaut_input.png" --prompt "Describe this image." \
  --output "$TMP/vlv_out.safetensors" --hidden --quiet
expect_rc 0 "forward on the quantized vision tower"
"$CMP" "$TMP/vlv_out.safetensors" visual.pooler_output "$FX/refs/tiny-qwen3-vl_ref.safetensors" astronaut.visual.pooler_output 0.02 \
  >/dev/null || fail "quantized vision tower: image embeddings more than 2 % from the float reference"
echo '{"model.visual.blocks.*": "w8a8"}' >"$TMP/vmix2.json"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-vl" --save_path "$TMP/vlx" --quant_type w8a8 \
  --calib_data "$CALIB" --calib_samples 4 --mix_cfg "$TMP/vmix2.json"
expect_rc 1 "static vision quantization without images"
expect_err "needs image calibration samples" "static vision quantization without images"
[ ! -e "$TMP/vlx" ] || fail "output left after a failed run"

# SIGINT in the middle of a run: no output directory, no staging directory
"$SYNTH" --preset qwen3-0.6b --layers 12 --vocab 4096 --tokenizer "$FX/models/tiny-qwen3/tokenizer.json" \
  --out "$TMP/big" >/dev/null || fail "synth"
"$CSLIM" quant --model_path "$TMP/big" --save_path "$TMP/int" --quant_type w8a8 --calib_data "$CALIB" \
  --calib_samples 24 --quiet >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
[ $rc -ne 0 ] || fail "interrupted run exited 0 (finished before the signal?)"
grep -q "interrupted" "$TMP/int.err" || fail "no 'interrupted' message: $(cat "$TMP/int.err")"
[ ! -e "$TMP/int" ] || fail "partial output after SIGINT"
[ -z "$(ls -A "$TMP" | grep cslim-tmp)" ] || fail "staging directory left after SIGINT"
finish
