#!/bin/sh
# Regenerates gen/ (the Go code for horae's .proto files) from the repository's proto/ directory.
#
# The generated files are committed, so building the example needs only Go, go-plugin and grpc;
# run this after changing a .proto this plugin uses. Offline, with Debian's packages:
#   apt-get install protobuf-compiler golang-goprotobuf-dev
# (protoc 3.21 and protoc-gen-go 1.3, whose `plugins=grpc` writes code for Debian's grpc 1.33 and
# golang/protobuf 1.3, the versions go-plugin 1.0.1 is built with).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
proto_dir=$(cd "$here/../../../proto" && pwd)
for tool in protoc protoc-gen-go; do
    command -v "$tool" >/dev/null || {
        echo "generate.sh: $tool is missing: apt-get install protobuf-compiler golang-goprotobuf-dev" >&2
        exit 1
    }
done

# The generated files land under gen/ in the proto/ layout (each file's go_package: types/v1,
# types, horae/plugin/v1), imported as goecho/gen/... in GOPATH mode (scripts/build_go_example.sh).
# google/protobuf/empty.proto maps to golang/protobuf 1.3's own package.
empty=Mgoogle/protobuf/empty.proto=github.com/golang/protobuf/ptypes/empty

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# protoc-gen-go 1.3 takes one Go package per run.
for file in types/v1/executor.proto types/executor.proto horae/plugin/v1/info.proto; do
    protoc -I "$proto_dir" -I /usr/include --go_out="plugins=grpc,$empty:$out" "$file"
done
rm -rf "$here/gen"
mv "$out" "$here/gen"
chmod 755 "$here/gen"
echo "generated: $(cd "$here" && find gen -name '*.go' | sort | tr '\n' ' ')"
