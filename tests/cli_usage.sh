#!/usr/bin/env bash
# The CLI skeleton: help for every subcommand, usage errors with exit 2.
CSLIM=$1
. "$(dirname "$0")/cli_lib.sh"

run "$CSLIM"
expect_rc 2 "no command"
expect_err "usage: cslim <command>" "no command"

run "$CSLIM" --help
expect_rc 0 "--help"
for c in inspect forward tokenize eval generate quant convert check; do
  expect_out "  $c " "--help lists $c"
  run "$CSLIM" "$c" --help
  expect_rc 0 "$c --help"
  expect_out "usage: cslim $c" "$c --help"
  run "$CSLIM" --help
done

run "$CSLIM" --version
expect_rc 0 "--version"
expect_out "cslim " "--version"

run "$CSLIM" frobnicate
expect_rc 2 "unknown command"
expect_err "unknown command 'frobnicate'" "unknown command"

run "$CSLIM" inspect
expect_rc 2 "missing required flag"
expect_err "--model_path is required" "missing required flag"
expect_err_lines 1 "missing required flag"

run "$CSLIM" inspect --model_pth x
expect_rc 2 "misspelt flag"
expect_err "did you mean --model_path?" "misspelt flag"

run "$CSLIM" inspect --model_path x --threads many
expect_rc 2 "bad integer"
expect_err "--threads: 'many' is not an integer" "bad integer"

run "$CSLIM" inspect --model_path x --json maybe
expect_rc 2 "stray argument"

run "$CSLIM" inspect --model_path x --log_level loud
expect_rc 2 "bad log level"
expect_err "--log_level" "bad log level"

# dashes and underscores are interchangeable, --flag=value works
run "$CSLIM" inspect --model-path="$CSLIM_SOURCE_DIR/examples/tiny-qwen3" --quiet True
expect_rc 0 "--model-path=..."

# --device: a GPU needs a CUDA build and a visible device; a list names distinct GPUs
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda
expect_rc 1 "--device cuda without a usable GPU"
expect_err "--device cuda: " "--device cuda without a usable GPU"
expect_err_lines 1 "--device cuda without a usable GPU"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda:0,1
expect_rc 1 "--device cuda:0,1 without usable GPUs"
expect_err "--device cuda:0,1: " "--device cuda:0,1 without usable GPUs"
expect_err_lines 1 "--device cuda:0,1 without usable GPUs"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda:1,1
expect_err "cuda:1 named twice" "--device cuda:1,1"
# CSLIM_CUDA_SHARES (the several-GPU path on one GPU) is checked before any GPU is looked for
run env CSLIM_CUDA_SHARES=0 "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda
expect_rc 1 "CSLIM_CUDA_SHARES=0"
expect_err "CSLIM_CUDA_SHARES=0: a count of shares, 1 to 16" "CSLIM_CUDA_SHARES=0"
run env CSLIM_CUDA_SHARES=2x "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda
expect_err "CSLIM_CUDA_SHARES=2x: a count of shares" "CSLIM_CUDA_SHARES=2x"
run env CSLIM_CUDA_SHARES=2 "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda:0,1
expect_err "CSLIM_CUDA_SHARES=2 splits one GPU, and --device cuda:0,1 names 2 GPUs" "CSLIM_CUDA_SHARES with two GPUs"
run env CSLIM_CUDA_SHARES=x "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cpu
expect_err "W8A8 needs calibration data" "CSLIM_CUDA_SHARES leaves --device cpu alone"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device cuda:0,x
expect_err "cpu, cuda, cuda:N or cuda:N,M,..." "--device cuda:0,x"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --device tpu
expect_err "cpu, cuda, cuda:N or cuda:N,M,..." "--device tpu"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --gpu_gemm bf16
expect_rc 2 "--gpu_gemm without a GPU"
expect_err "--gpu_gemm needs --device cuda" "--gpu_gemm without a GPU"
run "$CSLIM" quant --model_path "$TMP/none" --save_path "$TMP/q" --gpu_gemm fp16
expect_err "--gpu_gemm fp16: fp32, tf32 or bf16" "--gpu_gemm fp16"

# convert / check on a directory that is not a checkpoint: one line naming it
run "$CSLIM" convert --model_path "$TMP/none" --save_path "$TMP/conv-out" --target vllm-ascend
expect_rc 1 "convert of a missing directory"
expect_err_lines 1 "convert of a missing directory"
[ ! -e "$TMP/conv-out" ] || fail "convert left output"
run "$CSLIM" check --model_path "$TMP/none"
expect_rc 1 "check of a missing directory"
expect_out "FAILED" "check of a missing directory"
finish
