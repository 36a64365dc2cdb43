#!/usr/bin/env bash
# cslim tokenize.
CSLIM=$1
. "$(dirname "$0")/cli_lib.sh"
FX=$CSLIM_FIXTURES

run "$CSLIM" tokenize --model_path "$FX/tokenizer/qwen3-tokenizer.json" --text "Hello world"
expect_rc 0 "qwen3 ids"
[ "$OUT" = "9707 1879" ] || fail "qwen3 ids: got '$OUT'"

run "$CSLIM" tokenize --model_path "$FX/models/tiny-qwen3" --text "Hello" --chat --json
expect_rc 0 "chat json"
[ "$OUT" = '{"ids":[4071,2263,198,39,2484,4072,198,4071,334,440,652,198],"count":12}' ] || fail "chat json: got '$OUT'"

run "$CSLIM" tokenize --model_path "$FX/models/tiny-qwen3" --text "Hi" --chat --enable_thinking False
expect_rc 0 "no thinking"
case "$OUT" in *" 4094 "*4095*) ;; *) fail "no thinking: no <think></think> ids in '$OUT'" ;; esac

printf 'line one\nline two\n' >"$TMP/in.txt"
run "$CSLIM" tokenize --model_path "$FX/models/tiny-qwen3" --file "$TMP/in.txt" --show
expect_rc 0 "--show"
expect_out "	\\n" "--show escapes newlines"

printf 'ab\377cd' >"$TMP/bad.txt"
run "$CSLIM" tokenize --model_path "$FX/models/tiny-qwen3" --file "$TMP/bad.txt"
expect_rc 1 "invalid UTF-8"
expect_err "$TMP/bad.txt: invalid UTF-8 at byte 2" "invalid UTF-8"
expect_err_lines 1 "invalid UTF-8"

run "$CSLIM" tokenize --model_path "$FX/models/tiny-qwen3" --text a --file "$TMP/in.txt"
expect_rc 2 "both --text and --file"
run "$CSLIM" tokenize --model_path "$TMP" --text a
expect_rc 1 "no tokenizer.json"
expect_err "$TMP/tokenizer.json" "no tokenizer.json"
finish
