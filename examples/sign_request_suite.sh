#!/usr/bin/env bash
# Runs examples/sign_request over every case of the AWS SigV4 test suite, in both forms, and
# compares its output byte for byte with the suite's signed requests.
set -uo pipefail
sign_request=${1:?usage: sign_request_suite.sh SIGN_REQUEST SUITE_DIR}
suite=${2:?usage: sign_request_suite.sh SIGN_REQUEST SUITE_DIR}
passed=0
failed=0
for dir in "$suite"/*/; do
  name=$(basename "$dir")
  for form in header query; do
    flag=()
    [[ $form == query ]] && flag=(--query)
    if diff <("$sign_request" "${flag[@]}" "$dir/context.json" "$dir/request.txt") \
      "$dir/$form-signed-request.txt" >/tmp/sign_request_diff.$$ 2>&1; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL: $name ($form)"
      cat /tmp/sign_request_diff.$$
    fi
  done
done
rm -f /tmp/sign_request_diff.$$
echo "$passed signed requests match, $failed differ"
[[ $failed -eq 0 && $passed -gt 0 ]]
