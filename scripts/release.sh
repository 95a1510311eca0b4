#!/usr/bin/env bash
# Builds release binaries of the gateway: static (CGO_ENABLED=0), stripped,
# reproducible paths (-trimpath), with the version and commit stamped in
# (`gateway version` prints them), one per platform, plus SHA256SUMS.
#
#   scripts/release.sh                      # version from `git describe`
#   VERSION=v1.2.0 scripts/release.sh       # explicit version
#   PLATFORMS="linux/amd64" scripts/release.sh
#
# Output: dist/kern-gateway_<version>_<os>_<arch> and dist/SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DIST=${DIST:-dist}
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64"}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

case "$VERSION" in
*[!A-Za-z0-9._+-]*) echo "release: VERSION '$VERSION' has characters unfit for a file name" >&2; exit 2 ;;
esac

host="$($GO env GOOS)/$($GO env GOARCH)"

mkdir -p "$DIST"
# dist/ holds one release: earlier builds would not match SHA256SUMS.
rm -f "$DIST"/kern-gateway_* "$DIST"/SHA256SUMS

for platform in $PLATFORMS; do
	os=${platform%/*}
	arch=${platform#*/}
	out="$DIST/kern-gateway_${VERSION}_${os}_${arch}"
	echo "== $os/$arch → $out"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch $GO build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o "$out" ./cmd/gateway
	# Check what was built rather than trust the environment.
	info=$($GO version -m "$out")
	for want in "CGO_ENABLED=0" "GOOS=$os" "GOARCH=$arch"; do
		if ! grep -q -- "$want" <<<"$info"; then
			echo "release: $out: build info lacks $want" >&2
			exit 1
		fi
	done
	if [ "$platform" = "$host" ]; then
		got=$("$out" version)
		if [ "$got" != "kern trace gateway $VERSION (commit $COMMIT)" ]; then
			echo "release: $out version printed '$got'" >&2
			exit 1
		fi
	elif ! grep -aqF -- "$VERSION" "$out"; then
		echo "release: $out does not carry version $VERSION" >&2
		exit 1
	fi
done

(
	cd "$DIST"
	sha256sum kern-gateway_"$VERSION"_* > SHA256SUMS
	sha256sum --check --quiet SHA256SUMS
	cat SHA256SUMS
)
