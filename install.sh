#!/usr/bin/env sh
# Build aksara in release mode and install it, with its certificate verifier library, man page and shell completions.
#   ./install.sh                  install into ~/.cargo/bin (or $PREFIX/bin when PREFIX is set)
#   ./install.sh --prefix DIR     install into DIR/bin, DIR/lib/aksara, DIR/share/man/man1, DIR/share/<shell>
#   ./install.sh --uninstall      remove what an install put there (with --prefix: from DIR)
# Safe to run again: it rebuilds and replaces the files. Needs no root unless DIR does.
set -eu

prefix="${PREFIX:-}"
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a folder" >&2; echo "hint: ./install.sh --prefix DIR" >&2; exit 2; }; prefix="$2"; shift 2 ;;
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
# aksara opens its OpenSSL verifier library from <its own folder>/../lib/aksara/ (src/tls_verify/library.rs).
libdir="$prefix/lib/aksara"
mandir="$prefix/share/man/man1"
bashdir="$prefix/share/bash-completion/completions"
zshdir="$prefix/share/zsh/site-functions"
fishdir="$prefix/share/fish/vendor_completions.d"
here=$(cd "$(dirname "$0")" && pwd)

if [ "$action" = uninstall ]; then
  removed=0
  for f in "$bindir/aksara" "$libdir/libaksara_openssl.so" "$mandir/aksara.1" "$bashdir/aksara" "$zshdir/_aksara" "$fishdir/aksara.fish"; do
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; echo "removed $f"; removed=1; fi
  done
  rmdir "$libdir" 2>/dev/null || true
  [ "$removed" = 1 ] || echo "nothing to remove under $prefix"
  exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed, and aksara is built with it" >&2
  echo "hint: install Rust from https://rustup.rs (then open a new shell), and run ./install.sh again" >&2
  exit 1
fi

# aksara verifies server certificates with the system's OpenSSL (the one psql uses), through
# its verifier library linked to it dynamically: the build needs its headers and pkg-config.
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists openssl 2>/dev/null; then
  echo "error: the OpenSSL development files are not installed (aksara links the system's OpenSSL, as psql does)" >&2
  echo "hint: Debian/Ubuntu: sudo apt-get install libssl-dev pkg-config; Fedora: sudo dnf install openssl-devel pkgconf-pkg-config; macOS: brew install openssl@3 pkg-config; then run ./install.sh again" >&2
  exit 1
fi

echo "building aksara (release; a few minutes the first time)..."
# Ask cargo where the binary and the library went: CARGO_TARGET_DIR or a config may move the
# target folder. Both packages by name, so cargo puts the library beside the binary.
messages=$(cargo build --release --locked --manifest-path "$here/Cargo.toml" --quiet \
          -p aksara -p aksara-openssl --message-format=json-render-diagnostics) || messages=
built=$(printf '%s\n' "$messages" | sed -n 's/.*"executable":"\([^"]*\/aksara\)".*/\1/p' | tail -n 1)
library=$(printf '%s\n' "$messages" | sed -n 's/.*"filenames":\[[^]]*"\([^"]*\/libaksara_openssl\.so\)".*/\1/p' | tail -n 1)
if [ -z "$built" ] || [ ! -x "$built" ] || [ -z "$library" ] || [ ! -f "$library" ]; then
  echo "error: the release build failed (cargo's messages are above)" >&2
  echo "hint: run \`cargo build --release\` in $here to see the whole error" >&2
  exit 1
fi
# The library first: a new binary never starts without the library of its version. Copy to a
# temporary name and rename, so a running aksara is never overwritten in place.
mkdir -p "$libdir"
cp "$library" "$libdir/.libaksara_openssl.so.new"
chmod 644 "$libdir/.libaksara_openssl.so.new"
mv -f "$libdir/.libaksara_openssl.so.new" "$libdir/libaksara_openssl.so"
echo "installed $libdir/libaksara_openssl.so"
mkdir -p "$bindir"
cp "$built" "$bindir/.aksara.new"
chmod 755 "$bindir/.aksara.new"
mv -f "$bindir/.aksara.new" "$bindir/aksara"
echo "installed $bindir/aksara ($("$bindir/aksara" --version))"

# The man page and the completions go where the prefix keeps them (man finds DIR/share/man
# for DIR/bin on PATH; bash-completion finds DIR/share/bash-completion the same way).
if mkdir -p "$mandir" 2>/dev/null && cp "$here/assets/aksara.1" "$mandir/aksara.1"; then
  echo "installed $mandir/aksara.1"
else
  echo "note: could not write $mandir; the man page is $here/assets/aksara.1" >&2
fi
for spec in "bash:$bashdir/aksara" "zsh:$zshdir/_aksara" "fish:$fishdir/aksara.fish"; do
  shell=${spec%%:*}; file=${spec#*:}
  if mkdir -p "$(dirname "$file")" 2>/dev/null && "$bindir/aksara" completions "$shell" > "$file.new" 2>/dev/null; then
    mv -f "$file.new" "$file"
    echo "installed $file"
  else
    rm -f "$file.new" 2>/dev/null || true
    echo "note: could not write $file; \`aksara completions $shell\` prints it" >&2
  fi
done

case ":$PATH:" in
  *":$bindir:"*) echo "next: run \`aksara dbsetup\` in your project folder" ;;
  *) echo "note: $bindir is not on your PATH; add it (export PATH=\"$bindir:\$PATH\") or run $bindir/aksara dbsetup" ;;
esac
if command -v zsh >/dev/null 2>&1; then echo "zsh: if completions do not load, add \`fpath+=($zshdir)\` before compinit in ~/.zshrc"; fi
