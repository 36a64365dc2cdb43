#!/usr/bin/env bash
# Outlier suppression and QuaRot from the command line:
#  - invariance: for every fixture model and every method, the float
#    checkpoint that --quant_type float writes (float32) gives the same logits
#    as the original, ||after - before|| / ||before|| < 1e-4;
#  - rotations of non-power-of-two hidden sizes (Paley bases 20, 12, 28);
#  - refusals (tied embeddings, bad flags);
#  - outlier stress: a copy of tiny-qwen3 with a few channels 64x larger (the
#    float function unchanged) wrecks plain W8A8; m2, m4 and QuaRot recover it;
#  - m2 and m4 W8A8 no worse than plain min-max on tiny-qwen3 and tiny-qwen3-moe.
CSLIM=$1
CMP=$2
SYNTH=$3
OUTLIER=$4
. "$(dirname "$0")/cli_lib.sh"
FX=$CSLIM_FIXTURES
CALIB=$FX/../calib/mix_calib.jsonl
IMG=$FX/images/astronaut_input.png

# logits of MODEL (text: the fixture's input ids; vl: an image prompt) into FILE
logits() {
  if [ "$3" = vl ]; then
    "$CSLIM" forward --model_path "$1" --image "$IMG" --prompt "Describe this image." --output "$2" --quiet
  else
    "$CSLIM" forward --model_path "$1" --inputs "$FX/refs/$3_ref.safetensors" --output "$2" --quiet
  fi
}

# invariant MODEL_DIR REF_KIND LABEL CALIB FLAGS...
invariant() {
  local dir=$1 kind=$2 label=$3 data=$4
  shift 4
  rm -rf "$TMP/t"
  run "$CSLIM" quant --model_path "$dir" --save_path "$TMP/t" --quant_type float --save_dtype float32 \
    --calib_data "$data" --calib_samples 12 --holdout 1 --quiet "$@"
  expect_rc 0 "$label: quant --quant_type float $*"
  [ "$RC" -eq 0 ] || return
  logits "$TMP/t" "$TMP/after.st" "$kind" || { fail "$label $*: forward on the transformed model"; return; }
  "$CMP" "$TMP/after.st" logits "$TMP/before.st" logits 1e-4 >/dev/null ||
    fail "$label $*: logits changed by the transform ($("$CMP" "$TMP/after.st" logits "$TMP/before.st" logits 1 2>&1))"
}

for M in tiny-qwen3 tiny-qwen3-moe tiny-qwen3-vl; do
  kind=$M
  data=$CALIB
  if [ $M = tiny-qwen3-vl ]; then kind=vl; data=$FX/../calib/images; fi
  logits "$FX/models/$M" "$TMP/before.st" "$kind" || fail "$M: forward"
  for flags in "--anti_method m1" "--anti_method m2" "--anti_method m4" "--anti_method m6" "--rot" \
    "--rot --anti_method m4"; do
    # shellcheck disable=SC2086
    invariant "$FX/models/$M" "$kind" "$M" "$data" $flags
  done
done

# what the float checkpoint holds: the Hub's layout, shift biases, the rotation
logits "$FX/models/tiny-qwen3" "$TMP/before.st" tiny-qwen3
invariant "$FX/models/tiny-qwen3" tiny-qwen3 "layout" "$CALIB" --rot --anti_method m4
[ -f "$TMP/t/model.safetensors" ] || fail "float output: no model.safetensors"
[ ! -e "$TMP/t/quant_model_description.json" ] || fail "float output: a quantization description"
[ -f "$TMP/t/optional/quarot.safetensors" ] || fail "float output: no optional/quarot.safetensors"
for tn in model.layers.0.input_layernorm.bias model.layers.0.post_attention_layernorm.bias \
  model.layers.0.self_attn.q_proj.bias model.layers.0.mlp.up_proj.bias; do
  head -c 20000 "$TMP/t/model.safetensors" | grep -qa "\"$tn\"" || fail "m4 float output lacks $tn"
done
# default dtype: the model's (bf16): close, not exact
rm -rf "$TMP/t"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/t" --quant_type float --rot --quiet
expect_rc 0 "float bf16 with --rot and no data"
head -c 4000 "$TMP/t/model.safetensors" | grep -qa '"BF16"' || fail "float output not bf16 by default"
logits "$FX/models/tiny-qwen3" "$TMP/before.st" tiny-qwen3
logits "$TMP/t" "$TMP/after.st" tiny-qwen3
"$CMP" "$TMP/after.st" logits "$TMP/before.st" logits 0.05 >/dev/null || fail "bf16 rotated model more than 5 % off"

# W8A8 with rotation writes the rotation and its description entry
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/qr" --quant_type w8a8 --calib_data "$CALIB" \
  --calib_samples 12 --rot --anti_method m4 --quiet
expect_rc 0 "w8a8 --rot --anti_method m4"
grep -q '"global_rotation": "optional/quarot.safetensors"' "$TMP/qr/quant_model_description.json" ||
  fail "description lacks optional.quarot.rotation_map"
grep -q '"model.layers.0.input_layernorm.bias": "FLOAT"' "$TMP/qr/quant_model_description.json" ||
  fail "description lacks the norm bias"

# hidden sizes that are not powers of two: bases 20 (640), 12 (384), 28 (448)
for H in 640 384 448; do
  "$SYNTH" --preset qwen3-0.6b --layers 2 --vocab 4096 --hidden $H --intermediate 512 --tie 0 --out "$TMP/s$H" \
    --tokenizer "$FX/models/tiny-qwen3/tokenizer.json" >/dev/null || fail "synth hidden $H"
  logits "$TMP/s$H" "$TMP/before.st" tiny-qwen3
  invariant "$TMP/s$H" tiny-qwen3 "hidden $H" "$CALIB" --rot
  invariant "$TMP/s$H" tiny-qwen3 "hidden $H block 32" "$CALIB" --rot --rot_block_size 32
  invariant "$TMP/s$H" tiny-qwen3 "hidden $H shifted" "$CALIB" --rot --rot_mode block_shifted
done

# a separate statistics set (--anti_data, its first --anti_batch_size samples), no calibration data
logits "$FX/models/tiny-qwen3-moe" "$TMP/before.st" tiny-qwen3-moe
rm -rf "$TMP/t"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-moe" --save_path "$TMP/t" --quant_type float --save_dtype float32 \
  --anti_data "$FX/../calib/qwen3-moe_anti_prompt_50.json" --anti_batch_size 8 --anti_method m4 --quiet
expect_rc 0 "m4 on --anti_data only"
expect_out "experts: no calibration data" "m4 on --anti_data only"
logits "$TMP/t" "$TMP/after.st" tiny-qwen3-moe
"$CMP" "$TMP/after.st" logits "$TMP/before.st" logits 1e-4 >/dev/null || fail "m4 on --anti_data: logits changed"
head -c 20000 "$TMP/t/model.safetensors" | grep -qa '"model.layers.0.input_layernorm.bias"' ||
  fail "m4 on --anti_data: no shift written"

# refusals
"$SYNTH" --preset qwen3-0.6b --layers 1 --vocab 4096 --hidden 256 --intermediate 256 --out "$TMP/tied" >/dev/null
run "$CSLIM" quant --model_path "$TMP/tied" --save_path "$TMP/x" --quant_type w8a8_dynamic --rot
expect_rc 1 "rotation of tied embeddings"
expect_err "ties them (tie_word_embeddings: true)" "rotation of tied embeddings"
expect_err_lines 1 "rotation of tied embeddings"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --anti_method m3 --calib_data "$CALIB"
expect_rc 2 "anti_method m3"
expect_err "--anti_method: 'm3'" "anti_method m3"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --quant_type w8a8_dynamic --anti_method m4
expect_rc 1 "smoothing without data"
expect_err "--anti_method m4 needs calibration data" "smoothing without data"
# a quantized output in another float dtype: the float tensors and config.json follow it
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/f16" --quant_type w8a8_dynamic --save_dtype float16
expect_rc 0 "save_dtype float16 on a quantized output"
grep -q '"dtype": "float16"' "$TMP/f16/config.json" || fail "config.json dtype not float16"
"$CSLIM" inspect --model_path "$TMP/f16" | grep 'model.norm.weight' | grep -q F16 ||
  fail "model.norm.weight not written in float16"
rm -rf "$TMP/f16"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3" --save_path "$TMP/x" --calib_data "$CALIB" --rot_mode diagonal
expect_rc 2 "bad rot_mode"
[ ! -e "$TMP/x" ] || fail "output left after a refused run"

# KL of a W8A8 run: quant_kl MODEL FLAGS... -> $KL
quant_kl() {
  local dir=$1
  shift
  rm -rf "$TMP/k"
  run "$CSLIM" quant --model_path "$dir" --save_path "$TMP/k" --quant_type w8a8 --calib_data "$FX/../calib/wiki.jsonl" \
    --calib_samples 32 --holdout 8 --quiet "$@"
  expect_rc 0 "w8a8 $*"
  KL=$(sed -n 's/.*KL(float || quantized) \([0-9.]*\) nats.*/\1/p' "$TMP/out")
  [ -n "$KL" ] || { fail "no KL in the summary of w8a8 $*"; KL=999; }
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# outlier stress
S=$TMP/stress
mkdir -p "$S"
cp "$FX/models/tiny-qwen3/"*.json "$FX/models/tiny-qwen3/"*.jinja "$S/" 2>/dev/null
"$OUTLIER" "$FX/models/tiny-qwen3" "$S/model.safetensors" 64 7 61 130 200 || fail "outlier_model"
logits "$FX/models/tiny-qwen3" "$TMP/before.st" tiny-qwen3
logits "$S" "$TMP/after.st" tiny-qwen3
"$CMP" "$TMP/after.st" logits "$TMP/before.st" logits 1e-6 >/dev/null || fail "the stressed copy computes another function"
quant_kl "$FX/models/tiny-qwen3"
base=$KL
quant_kl "$S"
stressed=$KL
echo "outlier stress: plain W8A8 KL $base -> $stressed"
le "$(awk -v b="$base" 'BEGIN { print 20 * b }')" "$stressed" || fail "outliers did not hurt plain W8A8 ($base -> $stressed)"
limit=$(awk -v b="$base" -v s="$stressed" 'BEGIN { print b + 0.1 * (s - b) }')
for flags in "--anti_method m2" "--anti_method m4" "--rot"; do
  # shellcheck disable=SC2086
  quant_kl "$S" $flags
  echo "outlier stress: $flags KL $KL"
  le "$KL" "$limit" || fail "outlier stress: $flags KL $KL recovers less than 90 % (limit $limit)"
done

# m2 and m4 no worse than plain min-max (KL on 8 held-back samples; m2 within 3 %)
for M in tiny-qwen3 tiny-qwen3-moe; do
  quant_kl "$FX/models/$M"
  plain=$KL
  quant_kl "$FX/models/$M" --anti_method m4
  echo "$M: W8A8 KL plain $plain, m4 $KL"
  le "$KL" "$plain" || fail "$M: m4 KL $KL worse than plain $plain"
  quant_kl "$FX/models/$M" --anti_method m2
  echo "$M: W8A8 KL m2 $KL"
  le "$KL" "$(awk -v p="$plain" 'BEGIN { print 1.03 * p }')" || fail "$M: m2 KL $KL worse than plain $plain"
done

finish
