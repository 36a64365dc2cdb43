#!/usr/bin/env bash
# Layer streaming keeps peak RSS near one decoder layer's float32 weights:
# a 6-layer model with Qwen3-0.6B's layer shapes (63 MB of float32 per layer,
# 377 MB for all layers) runs in well under two layers' worth.
CSLIM=$1
SYNTH=$3
. "$(dirname "$0")/cli_lib.sh"
"$SYNTH" --preset qwen3-0.6b --layers 6 --vocab 4096 --out "$TMP/m" >/dev/null || { fail "synth"; finish; }
# input_ids [2, 128] as a hand-built safetensors file
write_ids() {
  # 8-byte header length + JSON header + 256 int64 ids (little endian)
  local hdr='{"input_ids":{"dtype":"I64","shape":[2,128],"data_offsets":[0,2048]}}'
  local n=${#hdr}
  printf "$(printf '\\%03o' $((n & 255)) $(((n >> 8) & 255)) 0 0 0 0 0 0)" >"$TMP/in.safetensors"
  printf '%s' "$hdr" >>"$TMP/in.safetensors"
  for i in $(seq 0 255); do
    v=$(((i * 37) % 4000))
    printf "$(printf '\\%03o' $((v & 255)) $(((v >> 8) & 255)) 0 0 0 0 0 0)" >>"$TMP/in.safetensors"
  done
}
write_ids
run "$CSLIM" forward --model_path "$TMP/m" --inputs "$TMP/in.safetensors" --output "$TMP/out.safetensors" --threads 2
expect_rc 0 "forward"
rss=$(printf '%s\n' "$ERR" | sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p')
[ -n "$rss" ] || fail "no peak RSS reported: $ERR"
layer=63   # MB of float32 per layer
[ "${rss:-9999}" -lt $((2 * layer + 64)) ] || fail "peak RSS $rss MB: more than ~one layer ($layer MB) + activations"
echo "peak RSS $rss MB (one layer = $layer MB of float32, all six = $((6 * layer)) MB)"
finish
