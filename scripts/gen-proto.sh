#!/usr/bin/env bash
# Regenerates the Go code for the plugin protocol (plugins/proto/*.proto into
# plugins/pluginpb). The generated files are committed; run this after
# editing a .proto. Needs protoc (Debian/Ubuntu: apt-get install -y
# protobuf-compiler); the Go generators are installed when missing, pinned so
# that everyone generates the same bytes.
set -euo pipefail

cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION="$(go list -m -f '{{.Version}}' google.golang.org/protobuf)"
PROTOC_GEN_GO_GRPC_VERSION="v1.6.2"
MODULE="$(go list -m)"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen-proto: protoc not found; install it (Debian/Ubuntu: apt-get install -y protobuf-compiler)" >&2
	exit 1
fi

GOBIN="$(go env GOBIN)"
if [ -z "$GOBIN" ]; then
	GOBIN="$(go env GOPATH)/bin"
fi
export PATH="$GOBIN:$PATH"

version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }

if [ "$(version_of protoc-gen-go)" != "$PROTOC_GEN_GO_VERSION" ]; then
	go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(version_of protoc-gen-go-grpc)" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
	go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

protoc -I . \
	--go_out=. --go_opt=module="$MODULE" \
	--go-grpc_out=. --go-grpc_opt=module="$MODULE" \
	plugins/proto/exporter.proto

echo "gen-proto: regenerated plugins/pluginpb"
