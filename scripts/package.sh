#!/usr/bin/env bash
# Builds dist/ai-orchestrator-hub-linux-x64.tar.gz: the node binary, hivectl, settings/ and
# (when built) the CUDA backend libhub_neural_cuda.so side by side, as the operations guide
# unpacks it into /opt/ai-orchestrator-hub. The binary starts without CUDA; the backend is
# opened only on hosts where CUDA's libraries are installed.
# --no-build: package what build/ holds (the tests, which have built it already).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --no-build ] || scripts/build.sh
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp build/ai-orchestrator-hub build/hivectl "$stage/"
strip "$stage/ai-orchestrator-hub" "$stage/hivectl"
files=(ai-orchestrator-hub hivectl settings)
if [ -f build/libhub_neural_cuda.so ]; then
  cp build/libhub_neural_cuda.so "$stage/"
  strip --strip-unneeded "$stage/libhub_neural_cuda.so"
  files+=(libhub_neural_cuda.so)
fi
mkdir -p "$stage/settings"
cp config/settings/*.toml "$stage/settings/"
mkdir -p dist
tar -C "$stage" -czf dist/ai-orchestrator-hub-linux-x64.tar.gz "${files[@]}"
echo "package: dist/ai-orchestrator-hub-linux-x64.tar.gz ($(stat -c%s dist/ai-orchestrator-hub-linux-x64.tar.gz) bytes)"
tar -tzf dist/ai-orchestrator-hub-linux-x64.tar.gz

# The Debian package: dist/ai-orchestrator-hub_VERSION_ARCH.deb. Files where the guide puts
# them (/opt/ai-orchestrator-hub; settings in /etc/ai-orchestrator-hub/settings, linked from
# /opt/ai-orchestrator-hub/settings; the systemd unit; the logrotate policy), the user made in
# postinst, and Depends computed from the binaries' shared libraries (dpkg-shlibdeps).
version=$(build/ai-orchestrator-hub --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
deb=$(mktemp -d)
trap 'rm -rf "$stage" "$deb"' EXIT
pkg=$deb/pkg
install -d "$pkg/DEBIAN" "$pkg/opt/ai-orchestrator-hub" "$pkg/etc/ai-orchestrator-hub/settings" "$pkg/usr/bin" \
  "$pkg/lib/systemd/system" "$pkg/etc/logrotate.d" "$pkg/usr/share/doc/ai-orchestrator-hub"
install -m 0755 "$stage/ai-orchestrator-hub" "$stage/hivectl" "$pkg/opt/ai-orchestrator-hub/"
[ -f "$stage/libhub_neural_cuda.so" ] && install -m 0644 "$stage/libhub_neural_cuda.so" "$pkg/opt/ai-orchestrator-hub/"
install -m 0644 config/settings/*.toml "$pkg/etc/ai-orchestrator-hub/settings/"
ln -s /etc/ai-orchestrator-hub/settings "$pkg/opt/ai-orchestrator-hub/settings"
ln -s /opt/ai-orchestrator-hub/ai-orchestrator-hub "$pkg/usr/bin/ai-orchestrator-hub"
ln -s /opt/ai-orchestrator-hub/hivectl "$pkg/usr/bin/hivectl"
install -m 0644 deploy/systemd/ai-orchestrator-hub.service "$pkg/lib/systemd/system/"
install -m 0644 deploy/logrotate/ai-orchestrator-hub "$pkg/etc/logrotate.d/"
install -m 0644 README.md "$pkg/usr/share/doc/ai-orchestrator-hub/"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$pkg/DEBIAN/"
find "$pkg/etc" -type f | sed "s|^$pkg||" | sort >"$pkg/DEBIAN/conffiles"
# dpkg-shlibdeps reads a source package's debian/control: a minimal one in a scratch tree.
# The CUDA backend is left out on purpose: its libraries are NVIDIA's, and optional.
mkdir -p "$deb/src/debian"
printf 'Source: ai-orchestrator-hub\n\nPackage: ai-orchestrator-hub\nArchitecture: any\n' >"$deb/src/debian/control"
depends=$(cd "$deb/src" && dpkg-shlibdeps -O "$pkg/opt/ai-orchestrator-hub/ai-orchestrator-hub" "$pkg/opt/ai-orchestrator-hub/hivectl" 2>/dev/null |
          sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package: dpkg-shlibdeps computed no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" -e "s/@SIZE@/$size/" \
  deploy/debian/control.in >"$pkg/DEBIAN/control"
out=dist/ai-orchestrator-hub_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "package: $out ($(stat -c%s "$out") bytes)"
dpkg-deb -f "$out" Depends
