# Shared helpers for the CLI tests (sourced). $CSLIM is the binary under test.
set -u
FAILS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cslim-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# run CMD...: captures stdout/stderr/exit status into OUT, ERR, RC
run() {
  "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

expect_rc() { [ "$RC" -eq "$1" ] || fail "$2: exit $RC, expected $1 (stderr: $ERR)"; }
expect_out() { grep -qF -- "$1" "$TMP/out" || fail "$2: stdout lacks '$1'"; }
expect_err() { grep -qF -- "$1" "$TMP/err" || fail "$2: stderr lacks '$1' (got: $ERR)"; }
expect_err_lines() {
  n=$(wc -l <"$TMP/err")
  [ "$n" -eq "$1" ] || fail "$2: stderr has $n lines, expected $1: $ERR"
}

finish() {
  if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
