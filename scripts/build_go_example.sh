#!/bin/sh
# Builds the Go example executor (plugin_sdk/examples/go-executor) offline, from Debian's packages,
# into plugin_sdk/examples/go-executor/bin/horae-executor-goecho (a plugin dir; not committed).
#
# Needs Go, HashiCorp's go-plugin and grpc from Debian. When they are missing it installs them if
# it runs as root with apt-get, and otherwise fails saying which packages to install.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
example="$repo/plugin_sdk/examples/go-executor"
out="$example/bin/horae-executor-goecho"
gocode=/usr/share/gocode
packages="golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev"

missing() {
    ! command -v go >/dev/null 2>&1 ||
        [ ! -d "$gocode/src/github.com/hashicorp/go-plugin" ] ||
        [ ! -d "$gocode/src/google.golang.org/grpc" ] ||
        [ ! -d "$gocode/src/github.com/golang/protobuf/proto" ]
}

if missing; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "build_go_example: installing $packages (Debian packages)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages
    fi
    if missing; then
        echo "build_go_example: Go 1.19+, go-plugin and grpc from Debian are needed to build the Go example plugin;" >&2
        echo "  run as root: apt-get install -y $packages" >&2
        exit 1
    fi
fi

# GOPATH mode with Debian's Go sources: the example is the package `goecho` of a throwaway GOPATH
# (a symlink in a temp dir), and everything else comes from /usr/share/gocode. No network.
# -trimpath keeps the temp path out of the binary, so Go's build cache still hits next time.
workspace=$(mktemp -d "${TMPDIR:-/tmp}/horae-goecho.XXXXXX")
trap 'rm -rf "$workspace"' EXIT
mkdir -p "$workspace/src"
ln -s "$example" "$workspace/src/goecho"
mkdir -p "$example/bin"
# Built under a dot-name, then renamed: discovery never sees a half-written horae-executor-*.
partial="$example/bin/.horae-executor-goecho.partial.$$"
GO111MODULE=off GOPATH="$workspace:$gocode" GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
    go build -trimpath -o "$partial" goecho
mv "$partial" "$out"
echo "build_go_example: built $out"
