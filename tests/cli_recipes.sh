#!/usr/bin/env bash
# Recipes and the documented workflows, end to end:
#  - the README's three cases run exactly as written (from a copy of the
#    repository root's layout) and label every tensor as their recipe says;
#  - the fallback needs --yes and writes <model_type>_best_practice.yaml;
#  - a v0 recipe writes quant_model_weight_<type>, a VL v1 recipe quantizes the
#    vision blocks it names after QuaRot (32-blocks) and iter_smooth;
#  - iter_smooth's per-expert up -> down (v1) keeps the float function;
#  - errors: a user YAML's unknown key (named with its line), flags a recipe
#    decides, a missing calibration set, a model type of another family.
# usage: cli_recipes.sh CSLIM ST_COMPARE
CSLIM=$1
STCMP=$2
SRC=${CSLIM_SOURCE_DIR:?}
FX=${CSLIM_FIXTURES:?}
. "$(dirname "$0")/cli_lib.sh"

# the repository root as the README sees it: build/, data/, ../shared/fixtures
WORK=$TMP/repo
mkdir -p "$WORK" "$TMP/shared"
ln -s "$(cd "$(dirname "$CSLIM")" && pwd)" "$WORK/build"
ln -s "$SRC/data" "$WORK/data"
ln -s "$(cd "$FX" && pwd)" "$TMP/shared/fixtures"

readme_case() { # NAME -> the sh block after <!-- case: NAME -->
  awk -v m="<!-- case: $1 -->" '$0 == m { f = 1; next } f && /^```sh/ { g = 1; next } g && /^```/ { exit } g { print }' \
    "$SRC/README.md"
}

run_case() { # NAME
  readme_case "$1" >"$TMP/case.sh"
  [ -s "$TMP/case.sh" ] || { fail "README has no case '$1'"; return; }
  run bash -e -o pipefail -c "cd '$WORK' && . '$TMP/case.sh'"
  expect_rc 0 "README case $1"
  expect_out "ppl: " "README case $1: eval ppl"
  # generate printed a continuation after the eval lines
  [ "$(grep -cv '^ppl\|^windows\|^tokens\|^ *$' "$TMP/out")" -gt 0 ] || fail "README case $1: generate printed nothing"
}

# check_labels DESC KEY_ERE LABEL WHAT: every described tensor matching KEY_ERE has LABEL (and one does)
check_labels() {
  local n bad
  n=$(grep -cE "^ *\"$2\": " "$1")
  bad=$(grep -E "^ *\"$2\": " "$1" | grep -vF "\": \"$3\"" | head -1)
  [ "$n" -gt 0 ] || fail "$4: no tensor matches $2"
  [ -z "$bad" ] || fail "$4: $bad (expected $3)"
}

L='model\.layers\.[0-9]+'
LL='model\.language_model\.layers\.[0-9]+'

# 1. Qwen3-VL W8A8 (quant-vl)
run_case vl-w8a8
D=$WORK/out-vl-w8a8/quant_model_description.json
[ -f "$WORK/out-vl-w8a8/quant_model_weight_w8a8.safetensors" ] || fail "vl-w8a8: quant_model_weight_w8a8.safetensors"
check_labels "$D" "$LL\.(self_attn\.[qkvo]_proj|mlp\.(gate|up)_proj)\.(weight|input_scale|deq_scale|quant_bias)" W8A8 "vl-w8a8"
check_labels "$D" "$LL\.mlp\.down_proj\.weight" FLOAT "vl-w8a8 down_proj"
check_labels "$D" "model\.visual\..*" FLOAT "vl-w8a8 vision tower"
check_labels "$D" "lm_head\.weight" FLOAT "vl-w8a8 lm_head"
grep -q '"model_quant_type": "W8A8"' "$D" || fail "vl-w8a8: model_quant_type"

# 2. Qwen3-MoE W8A8 mixed with QuaRot (quant-moe)
run_case moe-w8a8-rot
D=$WORK/out-moe-w8a8/quant_model_description.json
ls "$WORK/out-moe-w8a8"/quant_model_weight_w8a8*.safetensors >/dev/null 2>&1 || fail "moe-w8a8-rot: weight file name"
[ -f "$WORK/out-moe-w8a8/optional/quarot.safetensors" ] || fail "moe-w8a8-rot: no rotation written"
check_labels "$D" "$L\.self_attn\.[qkvo]_proj\.(weight|input_scale|input_offset|deq_scale|quant_bias)" W8A8 "moe-w8a8 attention"
check_labels "$D" "$L\.mlp\.experts\.[0-9]+\.(gate|up|down)_proj\.(weight|weight_scale|weight_offset)" W8A8_DYNAMIC \
  "moe-w8a8 experts"
check_labels "$D" "$L\.mlp\.gate\.weight" FLOAT "moe-w8a8 router"
check_labels "$D" "$L\.input_layernorm\.bias" FLOAT "moe-w8a8 m4 shift bias"

# 3. Qwen3-MoE W4A8 (recipe)
run_case moe-w4a8
O=$WORK/out-moe-w4a8
D=$O/quant_model_description.json
[ -f "$O/quant_model_weights.safetensors" ] || fail "moe-w4a8: v1 weight file name"
cmp -s "$O/Qwen3-30B_best_practice.yaml" "$SRC/recipes/qwen3_moe/qwen3-30b-w4a8-v1.yaml" ||
  fail "moe-w4a8: Qwen3-30B_best_practice.yaml is not the recipe"
check_labels "$D" "$L\.self_attn\.[qkvo]_proj\.weight" W8A8_DYNAMIC "moe-w4a8 attention"
check_labels "$D" "$L\.mlp\.experts\.[0-9]+\.(gate|up|down)_proj\.(weight|weight_scale|weight_offset)" W4A8_DYNAMIC \
  "moe-w4a8 experts"
check_labels "$D" "$L\.mlp\.gate\.weight" FLOAT "moe-w4a8 router"
check_labels "$D" "lm_head\.weight" FLOAT "moe-w4a8 lm_head"

# 4. fallback: announced, refused without --yes (nothing written), run with it
M=$FX/models/tiny-qwen3
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/fb" --model_type Qwen3-8B --quant_type w8a8 </dev/null
expect_rc 1 "fallback without --yes"
expect_err "no w8a8 recipe for Qwen3-8B; using the default one" "fallback announced"
expect_err "pass --yes" "fallback needs --yes"
[ ! -e "$TMP/fb" ] || fail "fallback without --yes wrote output"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/fb" --model_type Qwen3-8B --quant_type w8a8 --yes \
  --calib_samples 8 --holdout 2
expect_rc 0 "fallback with --yes"
cmp -s "$TMP/fb/Qwen3-8B_best_practice.yaml" "$SRC/recipes/default/default-w8a8.yaml" || fail "fallback: best practice copy"
check_labels "$TMP/fb/quant_model_description.json" "$L\.(self_attn|mlp)\.[a-z_]+_proj\.weight" W8A8_DYNAMIC "default recipe"
rm -rf "$TMP/fb"

# 5. a v0 recipe (Qwen3-30B w8a8: m4, mix_cfg) writes quant_model_weight_<type>
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-moe" --save_path "$TMP/v0" --model_type Qwen3-30B --quant_type w8a8 \
  --calib_samples 8 --holdout 2
expect_rc 0 "v0 recipe"
[ -f "$TMP/v0/quant_model_weight_w8a8.safetensors" ] || fail "v0 recipe: quant_model_weight_w8a8.safetensors"
check_labels "$TMP/v0/quant_model_description.json" "$L\.self_attn\.[qkvo]_proj\.weight" W8A8 "v0 attention"
check_labels "$TMP/v0/quant_model_description.json" "$L\.mlp\.experts\.[0-9]+\.down_proj\.weight" W8A8_DYNAMIC "v0 experts"
rm -rf "$TMP/v0"

# 6. the Qwen3-VL v1 recipe: QuaRot (32-blocks), iter_smooth, W8A8 including the vision blocks
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-vl" --save_path "$TMP/vl1" --model_type Qwen3-VL-32B-Instruct \
  --quant_type w8a8 --holdout 0
expect_rc 0 "VL v1 recipe"
D=$TMP/vl1/quant_model_description.json
check_labels "$D" "model\.visual\.blocks\.[0-9]+\.(attn\.(qkv|proj)|mlp\.linear_fc1)\.weight" W8A8 "VL recipe vision blocks"
check_labels "$D" "model\.visual\.blocks\.[0-9]+\.mlp\.linear_fc2\.weight" FLOAT "VL recipe linear_fc2"
check_labels "$D" "model\.visual\..*merger.*\.weight" FLOAT "VL recipe mergers"
check_labels "$D" "$LL\.mlp\.down_proj\.weight" FLOAT "VL recipe down_proj"
check_labels "$D" "$LL\.self_attn\.q_proj\.weight" W8A8 "VL recipe q_proj"
grep -q '"global_rotation": "optional/quarot.safetensors"' "$D" || fail "VL recipe: rotation not described"
rm -rf "$TMP/vl1"

# 7. iter_smooth's per-expert up -> down and the shift keep the float function (no linear_quant: a float output)
cat >"$TMP/smooth.yaml" <<'EOF'
apiversion: modelslim_v1
metadata:
  config_id: smooth-only
  label: {w_bit: 8, a_bit: 8}
spec:
  process:
    - type: iter_smooth
      alpha: 0.5
      symmetric: false
      enable_subgraph_type: [norm-linear, ov, up-down]
EOF
M=$FX/models/tiny-qwen3-moe
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/sm" --model_type Qwen3-30B --config_path "$TMP/smooth.yaml" \
  --calib_data "$SRC/data/calib/qwen3-moe_calib_prompt_50.json" --calib_samples 8 --holdout 0 --save_dtype float32
expect_rc 0 "smoothing-only recipe"
"$CSLIM" forward --model_path "$M" --inputs "$FX/refs/tiny-qwen3-moe_ref.safetensors" --output "$TMP/a.st" --quiet
"$CSLIM" forward --model_path "$TMP/sm" --inputs "$FX/refs/tiny-qwen3-moe_ref.safetensors" --output "$TMP/b.st" --quiet
"$STCMP" "$TMP/b.st" logits "$TMP/a.st" logits 1e-4 >/dev/null || fail "per-expert up-down smoothing changed the logits"
grep -q 'input_layernorm.bias' <("$CSLIM" inspect --model_path "$TMP/sm" --full) ||
  fail "symmetric: false made no shift"
rm -rf "$TMP/sm"

# 8. errors
M=$FX/models/tiny-qwen3
printf 'apiversion: modelslim_v1\nmetadata: {config_id: e, label: {w_bit: 8, a_bit: 8}}\nspec:\n  process:\n    - type: iter_smooth\n      alpah: 0.5\n' >"$TMP/bad.yaml"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-8B --config_path "$TMP/bad.yaml"
expect_rc 1 "unknown key"
expect_err "bad.yaml:6: unknown key 'alpah' in iter_smooth" "unknown key named with its line"
expect_err_lines 1 "unknown key"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-8B --config_path "$TMP/bad.yaml" --quant_type w8a8
expect_rc 2 "--config_path with --quant_type"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-8B --quant_type w8a8 --yes --anti_method m2
expect_rc 2 "a flag the recipe decides"
expect_err "--anti_method: the recipe decides this" "a flag the recipe decides"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-30B --quant_type w8a8
expect_rc 2 "model type of another family"
expect_err "--model_type Qwen3-30B is a qwen3_moe model" "model type of another family"
run "$CSLIM" quant --model_path "$FX/models/tiny-qwen3-moe" --save_path "$TMP/x" --model_type Qwen3-Coder-480B-A35B --quant_type w4a8
expect_rc 1 "missing calibration set"
expect_err "calibration set 'autocodebench.jsonl' not found" "missing calibration set"
expect_err "mix_calib.jsonl" "missing calibration set lists what is there"
run "$CSLIM" quant --model_path "$M" --save_path "$TMP/x" --model_type Qwen3-32B --quant_type w8a8c8
expect_rc 1 "unimplemented processor"
expect_err "qwen3-32b-dense-w8a8c8.yaml:20: dynamic_cache" "unimplemented processor named with its line"
run "$CSLIM" quant-vl --model_path "$FX/models/tiny-qwen3-vl" --save_directory "$TMP/x" --fraction 0.5
expect_rc 2 "quant-vl --fraction out of range"
run "$CSLIM" quant-moe --model_path "$FX/models/tiny-qwen3-moe" --save_path "$TMP/x" --layer_count 2
expect_rc 2 "quant-moe --layer_count"
[ ! -e "$TMP/x" ] || fail "a refused run left output"

finish
