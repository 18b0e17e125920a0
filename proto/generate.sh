#!/bin/sh
# Regenerates the Go code of every .proto file under proto/ and records each
# source's SHA-256 beside it (<file>.proto.sha256), which the tests use to
# notice a .proto edited without regenerating.
#
# Usage: proto/generate.sh [OUT_DIR]
#   OUT_DIR  where to write the generated tree (default: proto/ itself).
#            The tests pass a temporary directory and compare.
#
# The generated files name the tool versions in their headers, so only these
# versions are accepted (the tests read them from this file):
PROTOC_VERSION=3.21.12
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
#
# Install them with:
#   apt-get install protobuf-compiler        (Debian 12 ships protoc 3.21.12)
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# and put $(go env GOPATH)/bin on PATH.

set -eu

PROTOS="agent/v1/agent.proto"

die() {
	echo "generate.sh: $*" >&2
	exit 1
}

# require_version TOOL WANT GOT: fail unless GOT is WANT.
require_version() {
	[ "$3" = "$2" ] || die "$1 is version '$3', want '$2' (see the header of proto/generate.sh)"
	echo "using $1 $3"
}

check_tools() {
	for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "$tool not found on PATH; install the versions listed at the top of proto/generate.sh"
	done
	require_version protoc "$PROTOC_VERSION" "$(protoc --version | sed 's/^libprotoc //')"
	require_version protoc-gen-go "$PROTOC_GEN_GO_VERSION" "$(protoc-gen-go --version | sed 's/^protoc-gen-go //')"
	require_version protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION" "v$(protoc-gen-go-grpc --version | sed 's/^protoc-gen-go-grpc //')"
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1"
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1"
	else
		die "neither sha256sum nor shasum found"
	fi
}

# record_sha256 PROTO OUT: write OUT/PROTO.sha256 in sha256sum's format.
record_sha256() {
	dir=$(dirname "$1")
	name=$(basename "$1")
	sum=$(cd "$dir" && sha256_of "$name")
	echo "writing $2/$1.sha256"
	printf '%s\n' "$sum" >"$2/$1.sha256"
}

main() {
	out=${1:-}
	case $out in
	"") ;;
	/*) ;;
	*) out=$(pwd)/$out ;;
	esac
	cd "$(dirname "$0")"
	out=${out:-.}
	check_tools
	for proto in $PROTOS; do
		mkdir -p "$out/$(dirname "$proto")"
		echo "protoc -I . --go_out=$out --go_opt=paths=source_relative --go-grpc_out=$out --go-grpc_opt=paths=source_relative $proto"
		protoc -I . \
			--go_out="$out" --go_opt=paths=source_relative \
			--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
			"$proto"
		record_sha256 "$proto" "$out"
	done
	echo "done"
}

main "$@"
