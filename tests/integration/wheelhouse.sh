#!/usr/bin/env bash
# ci-wheelhouse end to end against real servers on 127.0.0.1 and real pip:
#   build (sdists first, then wheels, offline) -> publish to s3rver -> pip installs a package
#   with a dependency and a Requires-Python marker through the flat find-links page and through
#   the PEP 503 index (plain S3 URLs), and through the index.html copies that S3 static-website
#   hosting serves; a bad wheel is reported and left out; a second publish uploads nothing; a
#   wheel whose bytes no longer match the index is refused by pip; a publish cut off mid-way
#   (the server stops answering) leaves the previous index; a published wheel with other
#   content is refused unless --overwrite.
# Also against moto_server when it can be had (moto enforces ACLs: every publish here is
# --acl public-read, as the old `s3cmd put -P` was, since pip reads anonymously). Needs node + s3rver (LIBCI_S3RVER, installed by
# scripts/test.sh) and Debian's python3 with venv, setuptools, wheel and botocore; without
# s3rver the test is skipped (exit 77), loudly.
set -uo pipefail
tool=${LIBCI_BUILD_DIR:?}/tools/ci-wheelhouse/ci-wheelhouse
support=${LIBCI_SOURCE_DIR:?}/tests/support
# --help: one usage line, ours (needs nothing else: checked before the skip below).
usages=$("$tool" build --help | grep -c '^Usage:')
if [[ $usages -ne 1 ]] || ! "$tool" build --help |
  grep -qF "Usage: ci-wheelhouse build [OPTIONS] [PROJECT_DIR | REQUIREMENT]..."; then
  echo "FAIL: ci-wheelhouse build --help shows $usages usage lines, or not its own"
  exit 1
fi
echo "ok: ci-wheelhouse build --help shows one usage line, its own"
python=/usr/bin/python3
if [[ -z ${LIBCI_S3RVER:-} || ! -f ${LIBCI_S3RVER:-} ]] || ! command -v node >/dev/null; then
  echo "SKIP: s3rver not found (LIBCI_S3RVER unset: scripts/test.sh installs it with npm)"
  exit 77
fi
for module in venv setuptools wheel botocore; do
  $python -c "import $module" 2>/dev/null ||
    { echo "SKIP: $python lacks $module (Debian: python3-$module)"; exit 77; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# pip as a fresh machine has it: none of this machine's pip settings.
for variable in $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/\1/p'); do unset "$variable"; done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Starts a server in the background; waits for a line matching $2 (sed capture: the port).
start() {
  local log=$1 pattern=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    port=$(sed -n "s/$pattern/\1/p" "$log" | head -1)
    [[ -n $port ]] && return 0
    sleep 0.1
  done
  echo "FAIL: $* did not start: $(cat "$log")"
  exit 1
}

# --- projects: pkg-a 2.0 needs pkg-b; pkg-c 1.0 is for Python >= 3.7, pkg-c 2.0 for < 3 ---
project() { # name version python_requires install_requires
  local dir=$tmp/src/$1
  mkdir -p "$dir/${1//-/_}"
  echo "VALUE = '$1 $2'" >"$dir/${1//-/_}/__init__.py"
  cat >"$dir/setup.py" <<EOF
from setuptools import setup
setup(name="$1", version="$2", packages=["${1//-/_}"], python_requires="$3",
      install_requires=[$4])
EOF
  echo "$dir"
}
build() { # wheel dir, project, [pip arguments]
  local out=$1 project=$2
  shift 2
  "$tool" build --python $python -w "$out" "$project" -- --no-index --no-build-isolation "$@" \
    >"$tmp/build.log" 2>&1 || { echo "FAIL: build: $(tail -20 "$tmp/build.log")"; exit 1; }
}
b=$(project pkg-b 1.0 ">=3" "")
a=$(project pkg-a 2.0 ">=3.7" "'pkg-b>=1.0'")
c1=$(project pkg-c 1.0 ">=3.7" "")
"$tool" build --python $python -w "$tmp/wheels" "$b" "$a" "$c1" -- --no-index \
  --no-build-isolation >"$tmp/build.log" 2>&1 || { echo "FAIL: build: $(tail -20 "$tmp/build.log")"; exit 1; }
rm -rf "$tmp/src/pkg-c"
c2=$(project pkg-c 2.0 "<3" "")
build "$tmp/later" "$c2" --ignore-requires-python
ls "$tmp/wheels"/pkg_a-2.0-*.whl "$tmp/wheels"/pkg_b-1.0-*.whl "$tmp/wheels"/pkg_c-1.0-*.whl \
  >/dev/null || fail "build did not make the three wheels: $(ls "$tmp/wheels")"
echo "ok: build made sdists, then wheels"
printf 'not a zip archive' >"$tmp/wheels/broken-1.0-py3-none-any.whl"

$python -m venv "$tmp/venv" || { echo "FAIL: python3 -m venv"; exit 1; }
pip=$tmp/venv/bin/pip

# PEP 440 as pip reads it: libci's parser and order against the packaging library pip vendors,
# over 30,000 strings made of version fragments (valid and not).
verdicts=$("$tmp/venv/bin/python" - "$LIBCI_BUILD_DIR/tests/pep440_check" <<'EOF'
import random, subprocess, sys
from pip._vendor.packaging.version import InvalidVersion, Version
random.seed(440)
atoms = ["1", "0", "2", "10", "007", ".", "-", "_", "a", "alpha", "b", "beta", "c", "rc", "pre",
         "preview", "post", "rev", "r", "dev", "+", "local", "ubuntu", "!", "v", "V", "RC",
         "Post", "DEV", " ", "x"]
cases = sorted({"".join(random.choice(atoms) for _ in range(random.randint(1, 8)))
                for _ in range(30000)} | {"1.0", "1!2.0a1.post3.dev4+ubuntu.1"})
ours = subprocess.run([sys.argv[1]], input="\n".join(cases) + "\n", capture_output=True,
                      text=True, check=True).stdout.split("\n")
differ, valid = [], 0
for case, mine in zip(cases, ours):
    try:
        theirs = str(Version(case))
        valid += 1
    except InvalidVersion:
        theirs = "INVALID"
    if mine != theirs:
        differ.append(f"{case!r}: libci {mine}, packaging {theirs}")
parsed = []
for case in cases:
    try:
        parsed.append(Version(case))
    except InvalidVersion:
        pass
theirs_sorted = [str(v) for v in sorted(parsed)]
ours_sorted = subprocess.run([sys.argv[1], "--sort"], input="\n".join(cases) + "\n",
                             capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
if ours_sorted != theirs_sorted:
    differ.append("the order differs: " + " / ".join(
        f"{o} vs {t}" for o, t in zip(ours_sorted, theirs_sorted) if o != t)[:400])
print(f"{len(cases)} {valid} {len(differ)}")
for line in differ[:10]:
    print(line)
EOF
)
read -r total valid differ <<<"$(head -1 <<<"$verdicts")"
if [[ ${differ:-x} == 0 && ${valid:-0} -gt 100 ]]; then
  echo "ok: PEP 440: libci and pip's packaging agree on $total strings ($valid valid, and their order)"
else
  fail "PEP 440 parsing differs from packaging: $verdicts"
fi
installs() { # label, pip arguments...: pkg-a and pkg-b install, pkg-c resolves to 1.0
  local label=$1
  shift
  "$pip" uninstall -q -y pkg-a pkg-b pkg-c >/dev/null 2>&1
  if ! "$pip" install -q "$@" pkg-a pkg-c >"$tmp/pip.log" 2>&1; then
    fail "$label: pip install: $(tail -5 "$tmp/pip.log")"
    return
  fi
  local got
  got=$("$tmp/venv/bin/python" -c 'import pkg_a, pkg_b, pkg_c; print(pkg_a.VALUE, "|", pkg_b.VALUE, "|", pkg_c.VALUE)')
  [[ $got == "pkg-a 2.0 | pkg-b 1.0 | pkg-c 1.0" ]] || fail "$label: installed $got"
  echo "ok: $label: pip installed pkg-a with pkg-b, and pkg-c 1.0 (2.0 wants Python < 3)"
}

suite() { # server name, endpoint, access key
  local name=$1 endpoint=$2
  export AWS_ACCESS_KEY_ID=$3 AWS_SECRET_ACCESS_KEY=$3
  local url=$endpoint/wheels/fedora20-x86_64

  out=$("$tool" publish "$tmp/wheels" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read 2>"$tmp/err")
  status=$?
  [[ $status -eq 1 ]] || fail "$name: publish with a bad wheel: exit $status, expected 1: $(cat "$tmp/err")"
  grep -q "bad wheel, left out: wheel .*broken-1.0-py3-none-any.whl: not a readable zip" "$tmp/err" ||
    fail "$name: bad wheel not reported: $(cat "$tmp/err")"
  grep -q "3 wheel(s) uploaded, 0 already there; index of 3 wheel(s)" <<<"$out" ||
    fail "$name: first publish: $out"
  echo "ok: $name: published 3 wheels, the bad one reported and left out"
  rm "$tmp/wheels/broken-1.0-py3-none-any.whl"

  installs "$name, find-links" --no-index --find-links "$url/index"
  installs "$name, PEP 503 index" --index-url "$url/simple/"

  out=$("$tool" publish "$tmp/wheels" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read)
  grep -q "0 wheel(s) uploaded, 3 already there; index of 3 wheel(s): 0 page(s) uploaded" <<<"$out" ||
    fail "$name: second publish uploaded something: $out"
  echo "ok: $name: a second publish uploads nothing"

  # A publish cut off mid-way: the proxy stops answering after 6 PUTs (the new wheel, its
  # .metadata, the manifest, and pkg-c's three pages); the flat index, uploaded last, stays as
  # it was, and every page links only to wheels that are there.
  start "$tmp/proxy.log" 'listening on 127\.0\.0\.1:\([0-9]*\)' \
    $python "$support/stopping_proxy.py" "${endpoint##*:}" 6
  local proxy=http://127.0.0.1:$port
  cp "$tmp"/later/pkg_c-2.0-*.whl "$tmp/wheels/"
  "$tool" publish "$tmp/wheels" s3://wheels/fedora20-x86_64 --endpoint-url "$proxy" --acl public-read \
    >/dev/null 2>"$tmp/err"
  status=$?
  kill "${pids[-1]}"
  [[ $status -eq 3 ]] || fail "$name: cut-off publish: exit $status, expected 3: $(cat "$tmp/err")"
  curl -sf "$url/index" | grep -q "pkg_c-2.0" && fail "$name: the cut-off publish changed the flat index"
  curl -sf "$url/index" | grep -q "pkg_c-1.0" || fail "$name: the flat index lost pkg-c 1.0"
  curl -sf "$url/simple/pkg-c/" | grep -q "pkg_c-2.0" ||
    fail "$name: the project page, uploaded before the flat index, was not"
  installs "$name, PEP 503 index after a cut-off publish" --index-url "$url/simple/"
  echo "ok: $name: a publish cut off mid-way left the previous index ($(head -1 "$tmp/err"))"
  # The next publish, of a directory without pkg-c 2.0: only the pending record the cut-off
  # one left says that wheel is there and which pages are owed.
  out=$("$tool" publish "$tmp/clean" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read)
  curl -sf "$url/index" | grep -q "pkg_c-2.0" ||
    fail "$name: the next publish did not finish the cut-off one's index: $out"
  out=$("$tool" publish "$tmp/clean" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read)
  grep -q "0 wheel(s) uploaded, 3 already there; index of 4 wheel(s): 0 page(s) uploaded" <<<"$out" ||
    fail "$name: the pending record was applied again after its publish finished: $out"
  rm "$tmp"/wheels/pkg_c-2.0-*.whl

  # Other content under a published name: refused, nothing uploaded; --overwrite replaces it.
  mkdir -p "$tmp/other"
  cp "$tmp"/wheels/pkg_c-1.0-*.whl "$tmp/other/"
  other=$(ls "$tmp"/other/pkg_c-1.0-*.whl)
  $python - "$other" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "a") as z:
    z.writestr("pkg_c/extra.py", "EXTRA = 1\n")
EOF
  "$tool" publish "$tmp/other" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read \
    >/dev/null 2>"$tmp/err"
  status=$?
  [[ $status -eq 1 ]] || fail "$name: different content: exit $status, expected 1"
  grep -q "already published with other content (use --overwrite" "$tmp/err" ||
    fail "$name: different content: $(cat "$tmp/err")"
  echo "ok: $name: a wheel with other content under a published name is refused"

  # The wheel's bytes replaced behind the index's back: pip refuses the hash mismatch.
  s3call "$endpoint" put wheels "fedora20-x86_64/$(basename "$other")" "$other"
  "$pip" uninstall -q -y pkg-c >/dev/null 2>&1
  if "$pip" install -q --index-url "$url/simple/" "pkg-c==1.0" >"$tmp/pip.log" 2>&1; then
    fail "$name: pip installed a wheel whose sha256 differs from the index's"
  elif ! grep -q "DO NOT MATCH THE HASHES" "$tmp/pip.log"; then
    fail "$name: pip failed, but not on the hash: $(tail -5 "$tmp/pip.log")"
  else
    echo "ok: $name: pip refuses a wheel whose hash does not match the index"
  fi
  "$tool" publish "$tmp/other" s3://wheels/fedora20-x86_64 --endpoint-url "$endpoint" --acl public-read \
    --overwrite >/dev/null 2>"$tmp/err" || fail "$name: --overwrite: $(cat "$tmp/err")"
  "$pip" install -q --index-url "$url/simple/" "pkg-c==1.0" >"$tmp/pip.log" 2>&1 ||
    fail "$name: after --overwrite: $(tail -5 "$tmp/pip.log")"
  echo "ok: $name: --overwrite replaces it and the index follows"
}

# s3call ENDPOINT OP BUCKET [ARGS]: S3 operations the tool does not offer, through botocore (an
# independent client), with $AWS_ACCESS_KEY_ID as both key and secret.
s3call() {
  KEY=$AWS_ACCESS_KEY_ID $python - "$@" <<'EOF'
import os, sys
import botocore.session
from botocore.config import Config
endpoint, op, bucket = sys.argv[1:4]
key = os.environ["KEY"]
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
    aws_secret_access_key=key, config=Config(s3={"addressing_style": "path"}))
if op == "create":
    s3.create_bucket(Bucket=bucket)
elif op == "website":
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
elif op == "put":
    s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=open(sys.argv[5], "rb").read(),
                  ACL="public-read")
elif op == "delete-dir-keys":
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", []) if o["Key"].endswith("/")]
    for k in keys:
        s3.delete_object(Bucket=bucket, Key=k)
    print(len(keys))
EOF
}

# --- index and pip-conf, locally ---
mkdir -p "$tmp/local"
cp "$tmp"/wheels/pkg_*.whl "$tmp/local/"
printf 'not a zip archive' >"$tmp/local/broken-1.0-py3-none-any.whl"
"$tool" index "$tmp/local" >"$tmp/index.out" 2>"$tmp/err"
status=$?
[[ $status -eq 1 ]] || fail "index with a bad wheel: exit $status, expected 1"
grep -q "indexed 3 wheel(s)" "$tmp/index.out" || fail "index: $(cat "$tmp/index.out")"
for file in index simple/index.html simple/index.json simple/pkg-a/index.html \
  simple/pkg-a/index.json; do
  [[ -s $tmp/local/$file ]] || fail "index did not write $file"
done
ls "$tmp"/local/pkg_a-2.0-*.whl.metadata >/dev/null 2>&1 || fail "index wrote no .metadata file"
grep -q broken "$tmp/local/index" && fail "index linked the bad wheel"
installs "local PEP 503 index (file://)" --index-url "file://$tmp/local/simple/"
"$tool" index "$tmp/local" --base-url https://wheels.example.org/f20 >/dev/null 2>&1
grep -q 'href="https://wheels.example.org/f20/pkg_a-2.0-py3-none-any.whl#sha256=' \
  "$tmp/local/simple/pkg-a/index.html" || fail "--base-url not in the project page's links"
conf=$("$tool" pip-conf https://s3-us-west-2.amazonaws.com/wheels/f20/index)
grep -q '^find-links = https://s3-us-west-2.amazonaws.com/wheels/f20/index$' <<<"$conf" ||
  fail "pip-conf: $conf"
echo "ok: index (bad wheel left out, pip installs from it, --base-url) and pip-conf"

# --- s3rver ---
mkdir -p "$tmp/s3rver"
start "$tmp/s3rver.log" '.*listening on 127\.0\.0\.1:\([0-9]*\).*' \
  node --openssl-legacy-provider "$LIBCI_S3RVER" -d "$tmp/s3rver" -a 127.0.0.1 -p 0
s3rver=http://127.0.0.1:$port
AWS_ACCESS_KEY_ID=S3RVER s3call "$s3rver" create wheels
clean_wheels=$tmp/clean
mkdir -p "$clean_wheels"
cp "$tmp"/wheels/pkg_*.whl "$clean_wheels/"
suite s3rver "$s3rver" S3RVER

# Static-website hosting: S3 serves dir/index.html for dir/. With the 'dir/' keys removed,
# pip can only be reading the index.html copies.
AWS_ACCESS_KEY_ID=S3RVER s3call "$s3rver" create site
AWS_ACCESS_KEY_ID=S3RVER s3call "$s3rver" website site
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$tool" publish "$clean_wheels" \
  s3://site/f20 --endpoint-url "$s3rver" --acl public-read >/dev/null || fail "publish to the website bucket"
removed=$(AWS_ACCESS_KEY_ID=S3RVER s3call "$s3rver" delete-dir-keys site)
[[ $removed -eq 4 ]] || fail "website: expected 4 'dir/' keys (3 projects, the root), removed $removed"
installs "s3rver, static website (index.html)" --index-url "$s3rver/site/f20/simple/"

# --- moto_server, when it can be had ---
if [[ -n ${LIBCI_MOTO_SERVER:-} && -x ${LIBCI_MOTO_SERVER:-} ]]; then
  rm -f "$tmp"/wheels/*.whl
  cp "$clean_wheels"/*.whl "$tmp/wheels/"
  printf 'not a zip archive' >"$tmp/wheels/broken-1.0-py3-none-any.whl"
  start "$tmp/moto.log" '.*Running on http:\/\/127\.0\.0\.1:\([0-9]*\).*' \
    "$LIBCI_MOTO_SERVER" -H 127.0.0.1 -p 0
  moto=http://127.0.0.1:$port
  AWS_ACCESS_KEY_ID=testing s3call "$moto" create wheels
  suite moto_server "$moto" testing
else
  echo "NOTE: moto_server not available: the wheelhouse was tested against s3rver only"
fi

[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
