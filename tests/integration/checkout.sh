#!/usr/bin/env bash
# `ci-worker checkout` as a worker runs it: a branch merged forward onto master gives the merge
# commit the git CLI gives with the same identity and dates (exit 0, --json); a conflicting
# branch exits 1 listing the path; a missing branch exits 2. The --json line stays JSON when
# names hold quotes, backslashes and control characters.
set -uo pipefail
worker=${LIBCI_BUILD_DIR:?}/tools/ci-worker/ci-worker
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.org GIT_COMMITTER_NAME=Dev
export GIT_COMMITTER_EMAIL=dev@example.org
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

origin=$tmp/origin
git init -q -b master "$origin"
cd "$origin" || exit 1
printf 'a1\n' >a.txt && printf 'b1\n' >b.txt && git add -A && git commit -qm base
git checkout -qb feature && printf 'b2\n' >b.txt && git commit -qam feature
GIT_COMMITTER_DATE='1795510800 +0530' git commit -q --allow-empty -m 'feature, dated'
git checkout -qb clash master~0 && printf 'a-clash\n' >a.txt && git commit -qam clash
git checkout -q master && printf 'a2\n' >a.txt && git commit -qam master
cd "$tmp" || exit 1

out=$("$worker" checkout "file://$origin" "$tmp/work" --branch feature --cache "$tmp/cache" --json)
status=$?
[[ $status -eq 0 ]] || fail "feature: exit $status"
merge=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["merge"])' <<<"$out")
# The oracle: git merge in a clone, with the identity and the branch tip's committer date.
git clone -q "$origin" "$tmp/oracle" && cd "$tmp/oracle" || exit 1
git checkout -q --detach origin/feature
date=$(git log -1 --format=%cd --date=raw)
GIT_AUTHOR_NAME=libci GIT_AUTHOR_EMAIL=ci@localhost GIT_COMMITTER_NAME=libci \
  GIT_COMMITTER_EMAIL=ci@localhost GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
  git merge -q --no-ff --no-stat -m "Merge forward." origin/master
expected=$(git rev-parse HEAD)
cd "$tmp" || exit 1
[[ "$merge" == "$expected" ]] || fail "merge commit $merge, git made $expected"
[[ "$(git -C "$tmp/work" rev-parse HEAD)" == "$expected" ]] || fail "work directory not at the merge"
echo "ok: merge commit $merge equals git's"

out=$("$worker" checkout "file://$origin" "$tmp/work" --branch clash --cache "$tmp/cache" --json)
status=$?
[[ $status -eq 1 ]] || fail "clash: exit $status, expected 1"
python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["conflicts"] != ["a.txt"])' <<<"$out" ||
  fail "clash: conflicts not listed: $out"
[[ -z "$(git -C "$tmp/work" status --porcelain)" ]] || fail "clash: work directory not clean"
echo "ok: conflict reported"

"$worker" checkout "file://$origin" "$tmp/work" --branch nope --cache "$tmp/cache" 2>"$tmp/err"
status=$?
[[ $status -eq 2 ]] || fail "missing branch: exit $status, expected 2"
grep -q "error: branch nope in file://" "$tmp/err" || fail "missing branch: $(cat "$tmp/err")"
echo "ok: missing branch is an error"

# Names the JSON must escape: a branch and a target with a quote, a conflicting path with a
# quote, a backslash, a tab, a newline and a control character (0x01). The line must parse, and
# parse back to the names git holds.
weird_path=$'we"ird\\path\tnl\n\x01.txt'
weird_branch='topic/we"ird'
weird_target='tar"get'
git -C "$origin" checkout -qb "$weird_target" master
printf 'target\n' >"$origin/$weird_path"
git -C "$origin" add -A && git -C "$origin" commit -qm "weird name, target side"
git -C "$origin" checkout -qb "$weird_branch" master
printf 'branch\n' >"$origin/$weird_path"
git -C "$origin" add -A && git -C "$origin" commit -qm "weird name, branch side"
git -C "$origin" checkout -q master
out=$("$worker" checkout "file://$origin" "$tmp/weird" --branch "$weird_branch" \
  --target "$weird_target" --cache "$tmp/cache" --json)
status=$?
[[ $status -eq 1 ]] || fail "weird names: exit $status, expected 1"
python3 -c 'import json,sys; json.load(sys.stdin)' <<<"$out" || fail "weird names: not JSON: $out"
WEIRD_PATH=$weird_path WEIRD_TARGET=$weird_target \
  BRANCH_TIP=$(git -C "$origin" rev-parse "$weird_branch") \
  TARGET_TIP=$(git -C "$origin" rev-parse "$weird_target") python3 -c '
import json, os, sys
got = json.load(sys.stdin)
want = {"branch_tip": os.environ["BRANCH_TIP"], "target": os.environ["WEIRD_TARGET"],
        "target_tip": os.environ["TARGET_TIP"], "merge": None,
        "conflicts": [os.environ["WEIRD_PATH"]]}
sys.exit(0 if got == want else "got %r, want %r" % (got, want))
' <<<"$out" || fail "weird names: the JSON does not hold the names git holds"
echo "ok: names with a quote, a backslash and control characters are escaped"

# --submodules: a branch that adds a submodule gets it checked out only when asked (and, as
# its URL is file://, only with --allow-local-submodules).
git init -q -b master "$tmp/lib" && printf 'lib\n' >"$tmp/lib/lib.txt"
git -C "$tmp/lib" add -A && git -C "$tmp/lib" commit -qm lib
git -C "$origin" checkout -qb with-sub master
git -C "$origin" -c protocol.file.allow=always submodule add -q "file://$tmp/lib" lib
git -C "$origin" commit -qm "lib as a submodule" && git -C "$origin" checkout -q master
"$worker" checkout "file://$origin" "$tmp/sub1" --branch with-sub --target none \
  --cache "$tmp/cache" >/dev/null 2>&1 || fail "with-sub: exit $?"
[[ ! -e $tmp/sub1/lib/lib.txt ]] || fail "submodule checked out without --submodules"
"$worker" checkout "file://$origin" "$tmp/sub2" --branch with-sub --target none --submodules \
  --cache "$tmp/cache" >/dev/null 2>"$tmp/err" && fail "file:// submodule: not refused"
grep -q "submodule lib (file://$tmp/lib) in $tmp/sub2: a local path or file:// URL, refused" \
  "$tmp/err" || fail "file:// submodule: $(cat "$tmp/err")"
"$worker" checkout "file://$origin" "$tmp/sub2" --branch with-sub --target none --submodules \
  --allow-local-submodules --cache "$tmp/cache" >/dev/null 2>&1 ||
  fail "with-sub --submodules --allow-local-submodules: exit $?"
[[ -f $tmp/sub2/lib/lib.txt ]] || fail "--submodules: lib/lib.txt missing"
echo "ok: --submodules, local ones only with --allow-local-submodules"

# A DEST that is neither empty nor a libci checkout is refused, untouched.
mkdir -p "$tmp/mine" && echo precious >"$tmp/mine/notes.txt"
"$worker" checkout "file://$origin" "$tmp/mine" --branch feature --cache "$tmp/cache" 2>"$tmp/err"
status=$?
[[ $status -eq 2 ]] || fail "non-empty DEST: exit $status, expected 2"
grep -q "error: $tmp/mine is not empty and not a libci checkout" "$tmp/err" ||
  fail "non-empty DEST: $(cat "$tmp/err")"
[[ "$(cat "$tmp/mine/notes.txt")" == precious ]] || fail "non-empty DEST: its file changed"
echo "ok: a DEST that is not a checkout is refused"

# kill -9 in the middle of creating a mirror (the server accepted and never answered): no
# half-made mirror is left where the next checkout would find it, and the next checkout, with
# the server answering, makes it and cleans up after the killed one.
support=$(dirname "${BASH_SOURCE[0]}")/../support
git clone -q --bare "$origin" "$tmp/served/app.git"
echo hang >"$tmp/mode"
coproc daemon { exec python3 "$support/git_daemon.py" "$tmp/served" "$tmp/mode"; }
read -r -u "${daemon[0]}" line
url="git://${line#listening on }/app.git"
"$worker" checkout "$url" "$tmp/killed" --branch feature --cache "$tmp/cache9" >/dev/null 2>&1 &
victim=$!
for _ in $(seq 100); do
  compgen -G "$tmp/cache9/app-*.git.new-*" >/dev/null && break
  sleep 0.1
done
sleep 0.3
kill -9 $victim
wait $victim 2>/dev/null
compgen -G "$tmp/cache9/app-*.git.new-*" >/dev/null || fail "kill -9: no clone was under way"
compgen -G "$tmp/cache9/app-*.git" >/dev/null && fail "kill -9: a half-made mirror is in place"
echo serve >"$tmp/mode"
"$worker" checkout "$url" "$tmp/killed" --branch feature --cache "$tmp/cache9" >/dev/null 2>&1 ||
  fail "after kill -9: exit $?"
[[ -f $tmp/killed/b.txt ]] || fail "after kill -9: nothing checked out"
compgen -G "$tmp/cache9/app-*.git.new-*" >/dev/null && fail "after kill -9: the killed clone is left"
[[ "$(git --git-dir="$(echo "$tmp"/cache9/app-*.git)" config --get-all remote.origin.fetch)" == \
  $'+refs/heads/*:refs/heads/*\n+refs/tags/*:refs/tags/*' ]] || fail "after kill -9: refspecs"
kill "$daemon_PID" 2>/dev/null
echo "ok: kill -9 while creating a mirror"

[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
