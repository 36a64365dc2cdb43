#!/usr/bin/env bash
# W8A8S and W8A8SC from the command line:
#  - tiny-qwen3 W8A8S (fraction 0.01, every down_proj float) within 8 % of the float
#    perplexity by the integer-exact evaluation, >= 98 % of the codes in the 4-bit range,
#    the W8A8 tensor set labelled W8A8S; with use_sigma likewise; --quant_type w8a8s
#    gives the same checkpoint as --w_bit 4 --a_bit 8 --is_lowbit True;
#  - the shipped Qwen3-8B W8A8S recipe runs (m6, rollback of down_proj and some up/gate);
#  - the documented Qwen3-VL flow: quant-vl with the sparse flags, then compress --tp 2
#    (ratio >= 1.8), one directory per rank labelled W8A8SC, decompress restores it;
#  - refusals: fraction / sigma_factor out of range, act_method 3, compressing a
#    checkpoint without W8A8S weights, decompressing something else.
# usage: cli_sparse.sh CSLIM
CSLIM=$1
FX=${CSLIM_FIXTURES:?}
. "$(dirname "$0")/cli_lib.sh"
CALIB=$FX/../calib/mix_calib.jsonl
TEXT=$FX/text/eval.txt
M=$FX/models/tiny-qwen3

ppl() { "$CSLIM" eval ppl --model_path "$1" --text "$TEXT" --windows 16 --quiet | sed -n 's/^ppl: //p'; }
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { exit !(a <= b * (1 + p / 100)) }'; }

BASE=$(ppl "$M")
[ -n "$BASE" ] || fail "float perplexity"

# sparse DIR LABEL: the W8A8S acceptance checks on a quantized checkpoint (run's stdout in $TMP/out)
sparse_checks() {
  local dir=$1 what=$2 p share D
  p=$(ppl "$dir")
  within "$p" "$BASE" 8 || fail "$what: perplexity $p not within 8 % of float $BASE"
  share=$(sed -n 's/.*outside \[-8, 7\] (int8 outliers), \([0-9.]*\) % in the 4-bit range.*/\1/p' "$TMP/out")
  [ -n "$share" ] || fail "$what: no W8A8S statistics in the summary"
  awk -v s="${share:-0}" 'BEGIN { exit !(s >= 98) }' || fail "$what: only $share % of the codes in the 4-bit range"
  D=$dir/quant_model_description.json
  grep -q '"model_quant_type": "W8A8S"' "$D" || fail "$what: model_quant_type"
  grep -q '"model.layers.0.self_attn.q_proj.weight": "W8A8S"' "$D" || fail "$what: q_proj label"
  grep -q '"model.layers.0.self_attn.q_proj.deq_scale": "W8A8S"' "$D" || fail "$what: W8A8 tensor set (deq_scale)"
  grep -q '"model.layers.0.self_attn.q_proj.quant_bias": "W8A8S"' "$D" || fail "$what: W8A8 tensor set (quant_bias)"
  ! grep -q 'q_proj.weight_scale' "$D" || fail "$what: W8A8S has no weight_scale"
  grep -q '"model.layers.0.mlp.down_proj.weight": "FLOAT"' "$D" || fail "$what: down_proj rolled back"
  echo "$what: ppl $p (float $BASE), $share % in the 4-bit range"
}

run "$CSLIM" quant --model_path "$M" --save_path "$TMP/s1" --w_bit 4 --a_bit 8 --is_lowbit True --fraction 0.01 \
  --exclude "*.down_proj" --calib_data "$CALIB" --calib_samples 24 --holdout 4
expect_rc 0 "W8A8S fraction 0.01"
expect_out "bits/w (W8A8SC)" "per-layer sparse statistics"
sparse_checks "$TMP/s1" "W8A8S fraction 0.01"

run "$CSLIM" quant --model_path "$M" --save_path "$TMP/s2" --quant_type w8a8s --fraction 0.01 \
  --exclude "*.down_proj" --calib_data "$CALIB" --calib_samples 24 --holdout 4
expect_rc 0 "--quant_type w8a8s"
cmp -s "$TMP/s1/quant_model_weights.safetensors" "$TMP/s2/quant_model_weights.safetensors" ||
  fail "--quant_type w8a8s and --w_bit 4 --a_bit 8 --is_lowbit True differ"
rm -rf "$TMP/s2"

run "$CSLIM" quant --model_path "$M" --save_path "$TMP/s3" --w_bit 4 --a_bit 8 --is_lowbit True --use_sigma True \
  --sigma_factor 3.0 --exclude "*.down_proj" --calib_data "$CALIB" --calib_samples 24 --holdout 4
expect_rc 0 "W8A8S use_sigma"
sparse_checks "$TMP/s3" "W8A8S use_sigma"
rm -rf "$TMP/s3"

# the shipped recipe (m6, rollback by mix_cfg)
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/r" --model_type Qwen3-8B --quant_type w8a8s \
  --calib_data "$CALIB" --calib_samples 16 --holdout 2
expect_rc 0 "Qwen3-8B W8A8S recipe"
D=$TMP/r/quant_model_description.json
grep -q '"model.layers.1.mlp.up_proj.weight": "FLOAT"' "$D" || fail "recipe: layer 1 up_proj rolled back"
grep -q '"model.layers.0.mlp.up_proj.weight": "W8A8S"' "$D" || fail "recipe: layer 0 up_proj W8A8S"
grep -q '"model.layers.2.mlp.down_proj.weight": "FLOAT"' "$D" || fail "recipe: down_proj rolled back"
ls "$TMP/r"/quant_model_weight_w8a8s*.safetensors >/dev/null 2>&1 || fail "recipe: v0 file name"
rm -rf "$TMP/r"

# the documented Qwen3-VL W8A8SC flow
run "$CSLIM" quant-vl --model_path "$FX/models/tiny-qwen3-vl" --calib_images "$FX/../calib/images" \
  --save_directory "$TMP/vl" --w_bit 4 --a_bit 8 --is_lowbit True --fraction 0.01 --use_sigma True --torch_dtype fp16
expect_rc 0 "quant-vl W8A8S"
grep -q '"model_quant_type": "W8A8S"' "$TMP/vl/quant_model_description.json" || fail "quant-vl: not W8A8S"
grep -q '"dtype": "float16"' "$TMP/vl/config.json" || fail "quant-vl --torch_dtype fp16: config.json"
run "$CSLIM" compress --model_path "$TMP/vl" --save_directory "$TMP/vlsc" --tp 2
expect_rc 0 "compress --tp 2"
ratio=$(sed -n 's/.*ratio \([0-9.]*\)x.*/\1/p' "$TMP/out")
awk -v r="${ratio:-0}" 'BEGIN { exit !(r >= 1.8) }' || fail "compression ratio ${ratio:-?} < 1.8"
for r in 0 1; do
  P=$TMP/vlsc/part$r-of-2
  [ -f "$P/quant_model_weight_w8a8sc.safetensors" ] || fail "rank $r: weights"
  grep -q '"model_quant_type": "W8A8SC"' "$P/quant_model_description.json" || fail "rank $r: model_quant_type"
  for s in weight index info; do
    grep -q "\"model.language_model.layers.0.self_attn.q_proj.$s\": \"W8A8SC\"" "$P/quant_model_description.json" ||
      fail "rank $r: q_proj.$s not W8A8SC"
  done
  grep -q '"model.language_model.layers.0.self_attn.q_proj.deq_scale": "W8A8S"' "$P/quant_model_description.json" ||
    fail "rank $r: deq_scale stays W8A8S"
  [ -f "$P/config.json" ] && [ -f "$P/tokenizer.json" ] || fail "rank $r: model files"
done
run "$CSLIM" decompress --model_path "$TMP/vlsc" --save_directory "$TMP/vlsd"
expect_rc 0 "decompress"
cmp -s "$TMP/vl/quant_model_description.json" "$TMP/vlsd/quant_model_description.json" ||
  fail "decompress: description differs"
[ "$(ppl "$TMP/vl")" = "$(ppl "$TMP/vlsd")" ] || fail "decompress: perplexity differs"

# refusals
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --quant_type w8a8s --fraction 0.5 --calib_data "$CALIB"
expect_rc 2 "fraction out of range"
expect_err "--fraction 0.5 is not in [0.01, 0.1]" "fraction out of range"
run "$CSLIM" quant-vl --model_path "$FX/models/tiny-qwen3-vl" --save_directory "$TMP/x" --w_bit 4 --a_bit 8 \
  --is_lowbit True --use_sigma True --sigma_factor 5
expect_rc 2 "sigma_factor out of range"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --quant_type w8a8s --act_method 3 --calib_data "$CALIB"
expect_rc 1 "act_method 3 with W8A8S"
expect_err "act_method 3 is not allowed with W8A8S" "act_method 3 with W8A8S"
"$CSLIM" quant --model_path "$M" --save_path "$TMP/dyn" --quant_type w8a8_dynamic --quiet >/dev/null 2>&1
run "$CSLIM" compress --model_path "$TMP/dyn" --save_directory "$TMP/x" --tp 2
expect_rc 1 "compress without W8A8S weights"
expect_err "no W8A8S weights to compress" "compress without W8A8S weights"
run "$CSLIM" decompress --model_path "$TMP/dyn" --save_directory "$TMP/x"
expect_rc 1 "decompress of something else"
expect_err "no part<r>-of-<N> directories" "decompress of something else"
[ ! -e "$TMP/x" ] || fail "a refused run left output"

finish
