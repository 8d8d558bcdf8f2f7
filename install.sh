#!/usr/bin/env sh
# Build aksara in release mode and install the binary.
#   ./install.sh                  install into ~/.cargo/bin (or $PREFIX/bin when PREFIX is set)
#   ./install.sh --prefix DIR     install into DIR/bin
#   ./install.sh --uninstall      remove what an earlier run installed
# Safe to run again: it rebuilds and replaces the binary. Needs no root unless DIR does.
set -eu

prefix="${PREFIX:-}"
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a folder" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2; echo "hint: ./install.sh [--prefix DIR] [--uninstall]" >&2; exit 2 ;;
  esac
done
if [ -z "$prefix" ]; then
  prefix="${CARGO_HOME:-$HOME/.cargo}"
fi
bindir="$prefix/bin"
here=$(cd "$(dirname "$0")" && pwd)

if [ "$action" = uninstall ]; then
  removed=0
  for f in "$bindir/aksara" "$prefix/share/man/man1/aksara.1" \
           "$prefix/share/bash-completion/completions/aksara" \
           "$prefix/share/zsh/site-functions/_aksara" \
           "$prefix/share/fish/vendor_completions.d/aksara.fish"; do
    if [ -e "$f" ]; then rm -f "$f"; echo "removed $f"; removed=1; fi
  done
  [ "$removed" = 1 ] || echo "nothing to remove under $prefix"
  exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed, and aksara is built with it" >&2
  echo "hint: install Rust from https://rustup.rs (then open a new shell), and run ./install.sh again" >&2
  exit 1
fi

echo "building aksara (release)..."
cargo build --release --locked --manifest-path "$here/Cargo.toml" --quiet
mkdir -p "$bindir"
# Copy to a temporary name and rename, so a running aksara is never overwritten in place.
cp "$here/target/release/aksara" "$bindir/.aksara.new"
chmod 755 "$bindir/.aksara.new"
mv -f "$bindir/.aksara.new" "$bindir/aksara"
echo "installed $bindir/aksara ($("$bindir/aksara" --version))"

# Man page and completions, where the folders exist or can be made under the prefix.
if [ -f "$here/assets/aksara.1" ]; then
  mkdir -p "$prefix/share/man/man1" 2>/dev/null && cp "$here/assets/aksara.1" "$prefix/share/man/man1/aksara.1" && echo "installed $prefix/share/man/man1/aksara.1" || true
fi
if "$bindir/aksara" completions bash >/dev/null 2>&1; then
  mkdir -p "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d" 2>/dev/null || true
  "$bindir/aksara" completions bash > "$prefix/share/bash-completion/completions/aksara" 2>/dev/null || true
  "$bindir/aksara" completions zsh > "$prefix/share/zsh/site-functions/_aksara" 2>/dev/null || true
  "$bindir/aksara" completions fish > "$prefix/share/fish/vendor_completions.d/aksara.fish" 2>/dev/null || true
  echo "installed shell completions under $prefix/share"
fi

case ":$PATH:" in
  *":$bindir:"*) echo "next: run \`aksara dbsetup\` in your project folder" ;;
  *) echo "note: $bindir is not on your PATH; add it (export PATH=\"$bindir:\$PATH\") or run $bindir/aksara dbsetup" ;;
esac
