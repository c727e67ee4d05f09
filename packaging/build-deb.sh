#!/bin/sh
# Build the systemg .deb with cargo-deb (`cargo install cargo-deb`); it lands in
# <target>/debian/ unless cargo-deb's `-o DIR` is passed after `--`.
#
#   packaging/build-deb.sh [--profile release|dev] [--no-build] [-- CARGO-DEB-ARGS...]
#
# Shell completions and man pages are added when the sysg binary can generate them
# (`sysg completions SHELL`, `sysg manpages DIR`): they are written below
# <target>/packaging/extras/ and packaged through the `extras` variant of
# [package.metadata.deb] in Cargo.toml.

set -eu

profile=release
build=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --profile)
            [ $# -ge 2 ] || { echo "build-deb.sh: --profile needs a name" >&2; exit 2; }
            profile=$2
            shift
            ;;
        --no-build) build=no ;;
        --) shift; break ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."

if [ "$build" = yes ]; then
    cargo build --locked --profile "$profile" --bin sysg
fi

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { echo "build-deb.sh: cannot find the target directory" >&2; exit 1; }
case "$profile" in
    dev | test) profile_dir=debug ;;
    bench) profile_dir=release ;;
    *) profile_dir=$profile ;;
esac
bin=$target_dir/$profile_dir/sysg
[ -x "$bin" ] || { echo "build-deb.sh: $bin is missing (build it, or drop --no-build)" >&2; exit 1; }

# Must match the `extras` variant's asset path in Cargo.toml.
extras=$target_dir/packaging/extras
rm -rf "$extras"

# Completions, when this sysg has the subcommand.
if "$bin" completions bash >/dev/null 2>&1; then
    mkdir -p "$extras/bash-completion/completions" "$extras/zsh/vendor-completions" \
        "$extras/fish/vendor_completions.d"
    "$bin" completions bash >"$extras/bash-completion/completions/sysg"
    "$bin" completions zsh >"$extras/zsh/vendor-completions/_sysg"
    "$bin" completions fish >"$extras/fish/vendor_completions.d/sysg.fish"
else
    echo "build-deb.sh: this sysg has no \`completions\` subcommand; packaging without completions" >&2
fi

# Man pages (sysg.1 and sysg-COMMAND.1), when this sysg has the subcommand.
if "$bin" manpages "$extras/man/man1" >/dev/null 2>&1; then
    gzip -9n "$extras"/man/man1/*.1
else
    rm -rf "$extras/man"
    echo "build-deb.sh: this sysg has no \`manpages\` subcommand; packaging without man pages" >&2
fi

if [ -d "$extras" ]; then
    set -- --variant extras "$@"
fi
exec cargo deb --no-build --profile "$profile" "$@"
