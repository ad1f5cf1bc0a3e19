#!/usr/bin/env bash
# `ci-wheelhouse index` on careless or hostile directories (issue 15), and where `publish` sends
# its requests (issue 18): no server of S3 needed.
#   - a missing DIR is an error, not "1 bad wheel", and is not created;
#   - a file named `simple` in DIR is an error naming it, not an abort;
#   - pre-existing symbolic links named `index`, `*.metadata` are replaced, never written through;
#     one named `simple` (a directory of the index) is refused; nothing outside DIR changes;
#   - a `.metadata` file that cannot be written is an error (exit 3), and the pages do not
#     advertise it;
#   - a FIFO, a directory and a "*.WHL" file named like wheels are reported (exit 1);
#   - invalid UTF-8 and control characters in METADATA reach no page raw;
#   - publish signs for $AWS_REGION and sends to $AWS_ENDPOINT_URL_S3 (a local HTTP server
#     records the request).
set -uo pipefail
tool=${LIBCI_BUILD_DIR:?}/tools/ci-wheelhouse/ci-wheelhouse
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# wheel DIR DIST VERSION [EXTRA_METADATA]: a minimal wheel made with Python's zipfile.
wheel() {
  python3 - "$@" <<'PY'
import sys, zipfile
directory, dist, version = sys.argv[1:4]
extra = sys.argv[4].encode("utf-8", "surrogateescape") if len(sys.argv) > 4 else b""
with zipfile.ZipFile(f"{directory}/{dist}-{version}-py3-none-any.whl", "w") as z:
    z.writestr(f"{dist}-{version}.dist-info/METADATA",
               b"Metadata-Version: 2.1\nName: " + dist.encode() + b"\nVersion: " +
               version.encode() + b"\n" + extra + b"\n")
PY
}


# A missing DIR.
expect 3 "a missing DIR is an error" -- "$tool" index "$tmp/absent"
contains "$err" "$tmp/absent: No such file or directory"
grep -q "bad wheel" <<<"$out$err" && fail "a missing DIR was called a bad wheel"
[[ -e $tmp/absent ]] && fail "index created the missing DIR"

# A file named simple.
mkdir "$tmp/w1"
wheel "$tmp/w1" pkg_a 1.0
echo "not a directory" >"$tmp/w1/simple"
expect 3 "a file named simple is an error, not an abort" -- "$tool" index "$tmp/w1"
contains "$err" "open directory $tmp/w1/simple: Not a directory"
contains "$err" "the index of $tmp/w1 is incomplete"

# Symbolic links out of DIR.
mkdir "$tmp/w2" "$tmp/outside"
wheel "$tmp/w2" pkg_a 1.0
echo "outside index" >"$tmp/outside/index"
echo "outside metadata" >"$tmp/outside/metadata"
ln -s "$tmp/outside/index" "$tmp/w2/index"
ln -s "$tmp/outside/metadata" "$tmp/w2/pkg_a-1.0-py3-none-any.whl.metadata"
expect 0 "links named index and *.metadata are replaced" -- "$tool" index "$tmp/w2"
[[ $(cat "$tmp/outside/index") == "outside index" ]] || fail "index wrote through the link 'index'"
[[ $(cat "$tmp/outside/metadata") == "outside metadata" ]] || fail "index wrote through a .metadata link"
[[ -L $tmp/w2/index || -L $tmp/w2/pkg_a-1.0-py3-none-any.whl.metadata ]] && fail "the links are still there"
grep -q "Name: pkg_a" "$tmp/w2/pkg_a-1.0-py3-none-any.whl.metadata" || fail "no .metadata written"
mkdir "$tmp/outside/simple"
rm -rf "$tmp/w2/simple"
ln -s "$tmp/outside/simple" "$tmp/w2/simple"
expect 3 "a link named simple is refused" -- "$tool" index "$tmp/w2"
contains "$err" "open directory $tmp/w2/simple: a symbolic link, not followed out of the wheelhouse; remove it"
[[ -z $(ls -A "$tmp/outside/simple") ]] || fail "index wrote through the link 'simple': $(ls "$tmp/outside/simple")"
rm "$tmp/w2/simple"
mkdir "$tmp/w2/simple" "$tmp/outside/project"
ln -s "$tmp/outside/project" "$tmp/w2/simple/pkg-a"
expect 3 "a link for a project's directory is refused" -- "$tool" index "$tmp/w2"
contains "$err" "open directory $tmp/w2/simple/pkg-a: a symbolic link"
[[ -z $(ls -A "$tmp/outside/project") ]] || fail "index wrote through simple/pkg-a"

# A .metadata file that cannot be written (a directory holds its name).
mkdir "$tmp/w3"
wheel "$tmp/w3" pkg_a 1.0
wheel "$tmp/w3" pkg_b 1.0
mkdir "$tmp/w3/pkg_a-1.0-py3-none-any.whl.metadata"
expect 3 "an unwritable .metadata file is an error" -- "$tool" index "$tmp/w3"
contains "$err" "write $tmp/w3/pkg_a-1.0-py3-none-any.whl.metadata: Is a directory"
grep "pkg_a-1.0" "$tmp/w3/index" | grep -q "data-core-metadata" &&
  fail "the pages advertise the .metadata file that was not written"
grep "pkg_b-1.0" "$tmp/w3/index" | grep -q "data-core-metadata" ||
  fail "the pages lost pkg_b's .metadata"

# Things named like wheels that are not: reported, exit 1.
mkdir "$tmp/w4"
wheel "$tmp/w4" pkg_a 1.0
mkfifo "$tmp/w4/fifo-1.0-py3-none-any.whl"
mkdir "$tmp/w4/dir-1.0-py3-none-any.whl"
wheel "$tmp/w4" upper 1.0
mv "$tmp/w4/upper-1.0-py3-none-any.whl" "$tmp/w4/upper-1.0-py3-none-any.WHL"
expect 1 "a FIFO, a directory and *.WHL are reported" -- timeout 20 "$tool" index "$tmp/w4"
contains "$err" "bad wheel, left out: $tmp/w4/fifo-1.0-py3-none-any.whl: not a regular file"
contains "$err" "bad wheel, left out: $tmp/w4/dir-1.0-py3-none-any.whl: a directory"
contains "$err" "bad wheel, left out: $tmp/w4/upper-1.0-py3-none-any.WHL: a wheel's name ends in \".whl\""
contains "$out" "indexed 1 wheel(s) in $tmp/w4"
contains "$out" "3 bad wheel(s) left out"

# METADATA with invalid UTF-8 and control characters.
mkdir "$tmp/w5"
wheel "$tmp/w5" pkg_u 1.0 $'Requires-Python: >=3\xff\x01"<\n'
expect 0 "invalid UTF-8 in METADATA" -- "$tool" index "$tmp/w5"
python3 - "$tmp/w5" <<'PY' || fail "the pages of METADATA with invalid UTF-8 are not valid"
import json, sys
root = sys.argv[1]
page = json.loads(open(f"{root}/simple/pkg-u/index.json", "rb").read().decode("utf-8"))
assert page["files"][0]["requires-python"] == ">=3\ufffd\x01\"<", page
html = open(f"{root}/simple/pkg-u/index.html", "rb").read().decode("utf-8")
assert 'data-requires-python="&gt;=3\ufffd&#x1;&quot;&lt;"' in html, html
PY

# publish: the region and endpoint from the environment. A local server answers every request
# 500 and records the first one's Host and Authorization.
python3 - "$tmp/request" >"$tmp/server.log" 2>&1 <<'PY' &
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[1], "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Authorization')}\n")
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_PUT = do_GET
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
server_pid=$!
for _ in $(seq 100); do
  port=$(head -1 "$tmp/server.log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || fail "the recording server did not start"
mkdir "$tmp/w6"
wheel "$tmp/w6" pkg_a 1.0
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
AWS_REGION=eu-west-3 AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port AWS_ENDPOINT_URL=http://127.0.0.1:1 \
  timeout 60 "$tool" publish "$tmp/w6" s3://bucket/prefix >"$tmp/out" 2>"$tmp/err"
status=$?
[[ $status -eq 3 ]] || fail "publish against a server answering 500: exit $status: $(cat "$tmp/err")"
grep -q "Credential=AKIDEXAMPLE/[0-9]*/eu-west-3/s3/aws4_request" "$tmp/request" ||
  fail "publish did not sign for \$AWS_REGION at \$AWS_ENDPOINT_URL_S3: $(head -3 "$tmp/request" 2>&1)"
: >"$tmp/request"
AWS_DEFAULT_REGION=ap-south-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port \
  timeout 60 "$tool" publish "$tmp/w6" s3://bucket/prefix --region us-west-2 >/dev/null 2>&1
grep -q "/us-west-2/s3/aws4_request" "$tmp/request" ||
  fail "--region did not win over the environment, or \$AWS_ENDPOINT_URL was not used: $(head -3 "$tmp/request" 2>&1)"
: >"$tmp/request"
env -u AWS_REGION AWS_DEFAULT_REGION=ap-south-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port \
  timeout 60 "$tool" publish "$tmp/w6" s3://bucket/prefix >/dev/null 2>&1
grep -q "/ap-south-1/s3/aws4_request" "$tmp/request" ||
  fail "\$AWS_DEFAULT_REGION was not used: $(head -3 "$tmp/request" 2>&1)"
[[ $failures -eq 0 ]] && echo "ok: publish takes its region and endpoint from the environment"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
