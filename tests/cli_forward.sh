#!/usr/bin/env bash
# cslim forward / eval / generate on the fixtures.
CSLIM=$1
CMP=$2
. "$(dirname "$0")/cli_lib.sh"
FX=$CSLIM_FIXTURES

for m in tiny-qwen3 tiny-qwen3-moe; do
  run "$CSLIM" forward --model_path "$FX/models/$m" --inputs "$FX/refs/${m}_ref.safetensors" --output "$TMP/$m.safetensors" --hidden --quiet
  expect_rc 0 "forward $m"
  for t in logits hidden.0 hidden.2 hidden.4; do
    "$CMP" "$TMP/$m.safetensors" $t "$FX/refs/${m}_ref.safetensors" $t 1e-5 >/dev/null || fail "forward $m: $t differs from the reference"
  done
done
ls -A "$FX/../" >/dev/null
# no temporary files left beside the output
[ -z "$(ls -A "$TMP" | grep cslim-tmp)" ] || fail "staging left behind"

run "$CSLIM" eval ppl --model_path "$FX/models/tiny-qwen3" --text "$FX/text/eval.txt" --windows 16 --quiet
expect_rc 0 "eval ppl"
last=$(printf '%s\n' "$OUT" | tail -n 1)
# the fixtures give 19.2678 for the first 16 windows: agree within 0.1 %
awk -v l="$last" 'BEGIN { split(l, a, " "); d = a[2] / 19.2678 - 1; exit !(a[1] == "ppl:" && d < 1e-3 && d > -1e-3) }' ||
  fail "eval ppl: last line '$last', expected ppl: 19.2678 within 0.1 %"

run "$CSLIM" eval ppl --model_path "$FX/models/tiny-qwen3-moe" --text "$FX/text/eval.txt" --windows 16 --json --quiet
expect_rc 0 "eval ppl --json"
expect_out '"windows": 16' "eval ppl --json"
expect_out '"tokens": 4080' "eval ppl --json"

run "$CSLIM" eval perplexity --model_path "$FX/models/tiny-qwen3" --text "$FX/text/eval.txt"
expect_rc 2 "unknown evaluation"

run "$CSLIM" generate --model_path "$FX/models/tiny-qwen3" --prompt "The Python interpreter" --max_new_tokens 12 --quiet
expect_rc 0 "generate"
expect_out "The Python interpreter is" "generate"

run "$CSLIM" generate --model_path "$FX/models/tiny-qwen3-moe" --prompt "Hello" --chat --max_new_tokens 8 --quiet
expect_rc 0 "generate --chat"

run "$CSLIM" forward --model_path "$FX/models/tiny-qwen3" --inputs "$FX/models/tiny-qwen3/model.safetensors" --output "$TMP/x.safetensors"
expect_rc 1 "no input_ids"
expect_err "no 'input_ids' tensor" "no input_ids"
[ ! -e "$TMP/x.safetensors" ] || fail "output written on failure"
# Qwen3-VL: the prompt built from the image, the vision outputs and the logits
# against the references (whose patch embedding ran as a TF32 convolution)
VL=$FX/models/tiny-qwen3-vl
REF=$FX/refs/tiny-qwen3-vl_ref.safetensors
for p in astronaut coffee; do
  run "$CSLIM" forward --model_path "$VL" --image "$FX/images/${p}_input.png" --prompt "Describe this image." \
    --tf32_conv --hidden --output "$TMP/vl_$p.safetensors" --quiet
  expect_rc 0 "forward --image $p"
  for t in logits hidden.0 hidden.1 hidden.4 visual.pooler_output visual.deepstack_features.1 visual.last_hidden_state; do
    "$CMP" "$TMP/vl_$p.safetensors" $t "$REF" $p.$t 1e-5 >/dev/null || fail "forward --image $p: $t differs from the reference"
  done
  "$CMP" "$TMP/vl_$p.safetensors" pixel_values "$REF" $p.pixel_values 1e-6 >/dev/null || fail "$p: pixel_values differ"
done
# the file --image wrote is an input file: pixel_values + image_grid_thw + input_ids
run "$CSLIM" forward --model_path "$VL" --inputs "$TMP/vl_astronaut.safetensors" --tf32_conv --output "$TMP/vl_again.safetensors" --quiet
expect_rc 0 "forward --inputs with pixel_values"
"$CMP" "$TMP/vl_again.safetensors" logits "$REF" astronaut.logits 1e-5 >/dev/null || fail "forward --inputs (VL): logits differ"

run "$CSLIM" generate --model_path "$VL" --image "$FX/images/coffee_input.png" --prompt "Describe this image." --max_new_tokens 4 --quiet
expect_rc 0 "generate --image"

head -c 3000 "$FX/images/astronaut.jpg" > "$TMP/cut.jpg"
run "$CSLIM" forward --model_path "$VL" --image "$TMP/cut.jpg" --prompt "x" --output "$TMP/y.safetensors"
expect_rc 1 "truncated image"
expect_err "cut.jpg: corrupt JPEG: file is truncated" "truncated image"
[ ! -e "$TMP/y.safetensors" ] || fail "output written on failure"
run "$CSLIM" forward --model_path "$FX/models/tiny-qwen3" --image "$FX/images/coffee_input.png" --prompt "x" --output "$TMP/y.safetensors"
expect_rc 1 "image on a text model"
expect_err "takes no images" "image on a text model"
run "$CSLIM" forward --model_path "$VL" --image "$FX/images/coffee_input.png" --output "$TMP/y.safetensors"
expect_rc 2 "--image without --prompt"
finish
