# Helpers of the shell tests that run a command and check its exit status and output; source it
# after setting $tmp (a temporary directory) and failures=0.

# fail MESSAGE: counts and prints a failed check.
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND, keeps its output in $out and $err.
expect() {
  local status=$1 what=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [[ $got -ne $status ]]; then
    fail "$what: exit $got, expected $status"
    echo "  stdout: $out"
    echo "  stderr: $err"
  else
    echo "ok: $what"
  fi
}

# contains TEXT EXPECTED: EXPECTED must be a substring of TEXT.
contains() {
  if ! grep -qF -- "$2" <<<"$1"; then
    fail "expected to find: $2"
    echo "  in: $1"
  fi
}
