#!/usr/bin/env bash
# cslim inspect on the three fixture models and the demo copy.
CSLIM=$1
. "$(dirname "$0")/cli_lib.sh"
FX=$CSLIM_FIXTURES/models

run "$CSLIM" inspect --model_path "$FX/tiny-qwen3"
expect_rc 0 "dense"
expect_out "Qwen3ForCausalLM (family qwen3, transformers 5.17.0)" "dense"
expect_out "4 layers, hidden 256, intermediate 768, vocab 4096" "dense"
expect_out "4 query heads, 2 kv heads, head_dim 64, rope_theta 1e+06" "dense"
expect_out "parameters     5.25 M" "dense"
expect_out "tensors (47), grouped by layer:" "dense"
expect_out "  layer 3 (11 tensors" "dense"
expect_out "self_attn.q_norm.weight" "dense"
expect_out "separate (untied)" "dense"

run "$CSLIM" inspect --model_path "$FX/tiny-qwen3-moe"
expect_rc 0 "moe"
expect_out "8 per layer, top-2, moe_intermediate 128, norm_topk_prob true, per-expert tensors" "moe"
expect_out "mlp.experts.{0..7}.gate_proj.weight" "moe"
expect_out "in 3 files + index model.safetensors.index.json" "moe"
expect_out "parameters     6.04 M" "moe"

run "$CSLIM" inspect --model_path "$FX/tiny-qwen3-moe" --full
expect_rc 0 "moe --full"
expect_out "mlp.experts.7.up_proj.weight" "moe --full"

run "$CSLIM" inspect --model_path "$FX/tiny-qwen3-vl"
expect_rc 0 "vl"
expect_out "Qwen3VLForConditionalGeneration (family qwen3_vl" "vl"
expect_out "3 blocks, hidden 128, 4 heads, mlp 256, patch 16x16x2, merge 2x2, deepstack [0, 1]" "vl"
expect_out "mrope_section [8, 12, 12], interleaved" "vl"
expect_out "vision block 2" "vl"

run "$CSLIM" inspect --model_path "$FX/tiny-qwen3-vl" --json
expect_rc 0 "vl --json"
expect_out '"family":	"qwen3_vl"' "vl --json"
expect_out '"deepstack_visual_indexes":	[0, 1]' "vl --json"
expect_out '"name":	"model.visual.patch_embed.proj.weight"' "vl --json"
expect_out '"shape":	[128, 3, 2, 16, 16]' "vl --json"

# the demo copy in the repository is the same model
run "$CSLIM" inspect --model_path "$CSLIM_SOURCE_DIR/examples/tiny-qwen3" --json
expect_rc 0 "demo"
expect_out '"parameters":	5245696' "demo"

# errors: one line, non-zero, naming the file
run "$CSLIM" inspect --model_path "$TMP/nope"
expect_rc 1 "missing dir"
expect_err "$TMP/nope/config.json" "missing dir"
expect_err_lines 1 "missing dir"

mkdir -p "$TMP/bad"
cp "$FX/tiny-qwen3/config.json" "$TMP/bad/"
head -c 1000 "$FX/tiny-qwen3/model.safetensors" >"$TMP/bad/model.safetensors"
run "$CSLIM" inspect --model_path "$TMP/bad"
expect_rc 1 "truncated checkpoint"
expect_err "$TMP/bad/model.safetensors: header length" "truncated checkpoint"
expect_err_lines 1 "truncated checkpoint"

mkdir -p "$TMP/llama"
echo '{"architectures":["LlamaForCausalLM"],"model_type":"llama"}' >"$TMP/llama/config.json"
run "$CSLIM" inspect --model_path "$TMP/llama"
expect_rc 1 "unsupported architecture"
expect_err "architecture 'LlamaForCausalLM' is not supported; supported: Qwen3ForCausalLM" "unsupported"
finish
