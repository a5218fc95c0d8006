#!/usr/bin/env bash
# seaweed.sh — a real S3 server on 127.0.0.1 for the blob store tests: SeaweedFS.
#
#   seaweed.sh build         build weed once and cache it (about 8 minutes on 2 cores)
#   seaweed.sh start DIR     start `weed server -s3` on free loopback ports, data in DIR;
#                            writes DIR/env (S3_ENDPOINT, S3_BUCKET, key files) and creates the bucket
#   seaweed.sh stop DIR      stop the server started in DIR
#
# The module is on the Go module proxy but `go install …@version` refuses it for its
# replace directive, so the build copies the downloaded module into a writable directory
# and runs `go build ./weed` there. The binary is cached under
# ${POSTSTELLE_CACHE:-~/.cache/poststelle}/weed-<version>. The build takes no lock of its own:
# callers (CI, a developer running the suite under /tmp/poststelle-peers.lock) already hold
# whatever lock they use, and a second flock on the same file here would wait for itself.
set -euo pipefail
version="${SEAWEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
cache="${POSTSTELLE_CACHE:-$HOME/.cache/poststelle}"
bin="$cache/weed-$version"

build() {
  if [[ -x $bin ]]; then echo "$bin"; return; fi
  mkdir -p "$cache"
  local work
  work="$(mktemp -d "$cache/weed-build.XXXXXX")"
  if ! build_in "$work"; then
    chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
    return 1
  fi
  mv "$work/weed" "$bin"
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
  echo "$bin"
}

build_in() {
  local work="$1" dir
  dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  [[ -d $dir ]] || { echo "seaweed.sh: module download failed" >&2; return 1; }
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  echo "seaweed.sh: building weed $version (first run only, about 8 minutes on 2 cores)" >&2
  (cd "$work/src" && go build -o "$work/weed" ./weed)
}

freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="$1"
  build >/dev/null
  mkdir -p "$dir/data"
  local master volume filer s3
  master="$(freeport)"; volume="$(freeport)"; filer="$(freeport)"; s3="$(freeport)"
  local access secret
  access="poststelle$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  secret="$(od -An -N16 -tx4 /dev/urandom | tr -d ' \n')"
  printf '%s' "$access" >"$dir/access_key"
  printf '%s' "$secret" >"$dir/secret_key"
  # A second identity may read but not write: the tests use it to see that
  # intake refuses a message the object store did not take.
  printf '%s' "${access}ro" >"$dir/readonly_access_key"
  printf '%s' "${secret}ro" >"$dir/readonly_secret_key"
  chmod 600 "$dir"/*_key
  cat >"$dir/s3.json" <<JSON
{"identities":[
 {"name":"poststelle","credentials":[{"accessKey":"$access","secretKey":"$secret"}],
  "actions":["Admin","Read","Write","List","Tagging"]},
 {"name":"readonly","credentials":[{"accessKey":"${access}ro","secretKey":"${secret}ro"}],
  "actions":["Read","List"]}]}
JSON
  # Ports the grpc services derive (port+10000) must be free as well; retry on a clash.
  "$bin" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.port="$master" -master.port.grpc="$(freeport)" \
    -volume.port="$volume" -volume.port.grpc="$(freeport)" -volume.max=8 \
    -filer.port="$filer" -filer.port.grpc="$(freeport)" \
    -s3 -s3.port="$s3" -s3.port.grpc="$(freeport)" -s3.config="$dir/s3.json" \
    -master.volumeSizeLimitMB=64 >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/pid"
  local endpoint="127.0.0.1:$s3"
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://$endpoint/"; then break; fi
    sleep 0.5
  done
  cat >"$dir/env" <<ENV
S3_ENDPOINT=$endpoint
S3_BUCKET=poststelle-blobs
S3_ACCESS_KEY_FILE=$dir/access_key
S3_SECRET_KEY_FILE=$dir/secret_key
S3_READONLY_ACCESS_KEY_FILE=$dir/readonly_access_key
S3_READONLY_SECRET_KEY_FILE=$dir/readonly_secret_key
ENV
  echo "seaweed.sh: S3 on $endpoint (pid $(cat "$dir/pid"), log $dir/weed.log)" >&2
}

stop() {
  local dir="$1"
  [[ -f $dir/pid ]] || return 0
  local pid
  pid="$(cat "$dir/pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

case "${1:-}" in
  build) build ;;
  start) start "${2:?data directory}" ;;
  stop) stop "${2:?data directory}" ;;
  *) echo "usage: seaweed.sh build|start DIR|stop DIR" >&2; exit 2 ;;
esac
