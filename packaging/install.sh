#!/bin/sh
# Install systemg on a host without a package manager (or without a .deb/.rpm for it):
# the sysg binary, the systemg.service unit, a default /etc/systemg/systemg.yaml, the
# `systemg` group, the state and log directories, and under PREFIX/share the config schema,
# shell completions, man pages and docs. Running it again is harmless: the binary and the
# unit are replaced, an existing configuration is never overwritten.
#
#   sudo packaging/install.sh [--bin PATH] [--prefix /usr/local] [--no-start]
#   sudo packaging/install.sh --uninstall [--purge]
#
# --root DIR installs into DIR instead of / (for staging a tree: no group, no systemctl).

set -eu

prefix=/usr/local
root=
bin=
action=install
purge=no
start=yes

usage() {
    if [ "$1" -eq 0 ]; then
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    else
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    fi
    exit "$1"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --bin) [ $# -ge 2 ] || die "--bin needs a path"; bin=$2; shift ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift ;;
        --no-start) start=no ;;
        --uninstall) action=uninstall ;;
        --purge) purge=yes ;;
        -h | --help) usage 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; usage 2 ;;
    esac
    shift
done

here=$(cd "$(dirname "$0")" && pwd)
# Files come from beside this script (a release tarball) or from the source tree.
find_file() {
    for f in "$@"; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

bindir=$prefix/bin
unitdir=/etc/systemd/system
unit=systemg.service
# What the .deb puts under /usr/share, here under PREFIX/share.
sharedir=$prefix/share
schemadir=$sharedir/systemg
docdir=$sharedir/doc/systemg
mandir=$sharedir/man/man1
bash_completion=$sharedir/bash-completion/completions/sysg
zsh_completion=$sharedir/zsh/site-functions/_sysg
fish_completion=$sharedir/fish/vendor_completions.d/sysg.fish

# systemctl only for a live install on a host booted with systemd.
systemd_running() {
    [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

if [ "$(id -u)" -ne 0 ] && [ -z "$root" ]; then
    die "run as root (or give --root DIR to stage a tree)"
fi

install_all() {
    if [ -z "$bin" ]; then
        bin=$(find_file "$here/sysg" "$here/../target/release/sysg") ||
            die "no sysg binary found beside this script or in target/release; give --bin PATH"
    fi
    [ -x "$bin" ] || die "$bin is not an executable"
    unit_src=$(find_file "$here/$unit" "$here/../units/$unit") || die "$unit not found"
    config_src=$(find_file "$here/systemg.yaml") || die "the default systemg.yaml not found"

    install -d "$root$bindir" "$root$unitdir" "$root/etc/systemg"
    install -m 0755 "$bin" "$root$bindir/sysg.new"
    mv -f "$root$bindir/sysg.new" "$root$bindir/sysg"
    # The unit names /usr/bin/sysg; point it at where the binary went.
    sed "s|/usr/bin/sysg|$bindir/sysg|g" "$unit_src" >"$root$unitdir/$unit.new"
    chmod 0644 "$root$unitdir/$unit.new"
    mv -f "$root$unitdir/$unit.new" "$root$unitdir/$unit"
    if [ ! -e "$root/etc/systemg/systemg.yaml" ]; then
        install -m 0644 "$config_src" "$root/etc/systemg/systemg.yaml"
    fi
    install -d -m 0755 "$root/var/lib/systemg" "$root/var/log/systemg"
    install_extras

    if [ -z "$root" ] && ! getent group systemg >/dev/null 2>&1; then
        if command -v groupadd >/dev/null 2>&1; then
            groupadd --system systemg
        elif command -v addgroup >/dev/null 2>&1; then
            addgroup -S systemg
        else
            echo "install.sh: no groupadd or addgroup: create the systemg group yourself" >&2
        fi
    fi

    if systemd_running; then
        systemctl daemon-reload
        systemctl enable "$unit" >/dev/null
        if [ "$start" = yes ]; then
            # restart: a new binary or unit takes effect (the services are restarted too).
            systemctl restart "$unit"
        fi
    fi
    echo "installed $bindir/sysg, $unitdir/$unit, /etc/systemg/systemg.yaml and $sharedir/{systemg,doc/systemg,man,bash-completion,zsh,fish}${root:+ under $root}"
}

# Write what `$bin` prints for `sysg ARGS` to DEST (replaced whole, mode 0644).
generate() {
    dest=$1
    shift
    "$bin" "$@" >"$dest.new" || { rm -f "$dest.new"; die "sysg $* failed"; }
    chmod 0644 "$dest.new"
    mv -f "$dest.new" "$dest"
}

# The config schema (editors point yaml-language-server at it), completions, man pages and
# docs, as the .deb installs them under /usr/share.
install_extras() {
    install -d "$root$schemadir" "$root$docdir" "$root$mandir" \
        "$root$(dirname "$bash_completion")" "$root$(dirname "$zsh_completion")" \
        "$root$(dirname "$fish_completion")"
    schema_src=$(find_file "$here/systemg.schema.json" "$here/../docs/schemas/systemg.schema.json") || schema_src=
    if [ -n "$schema_src" ]; then
        install -m 0644 "$schema_src" "$root$schemadir/systemg.schema.json"
    else
        generate "$root$schemadir/systemg.schema.json" schema
    fi
    generate "$root$bash_completion" completions bash
    generate "$root$zsh_completion" completions zsh
    generate "$root$fish_completion" completions fish
    rm -f "$root$mandir"/sysg.1 "$root$mandir"/sysg-*.1 "$root$mandir"/sysg.1.gz "$root$mandir"/sysg-*.1.gz
    "$bin" manpages "$root$mandir" >/dev/null || die "sysg manpages failed"
    if command -v gzip >/dev/null 2>&1; then
        gzip -9nf "$root$mandir"/sysg.1 "$root$mandir"/sysg-*.1
    fi
    readme=$(find_file "$here/README.md" "$here/../README.md") || die "README.md not found"
    install -m 0644 "$readme" "$root$docdir/README.md"
    if [ -d "$here/docs" ]; then
        docs_src=$here/docs
    else
        docs_src=$here/../docs
    fi
    for f in "$docs_src"/*.md; do
        [ -f "$f" ] || die "no docs found in $docs_src"
        install -m 0644 "$f" "$root$docdir/"
    done
}

uninstall_extras() {
    rm -rf "$root$schemadir" "$root$docdir"
    rm -f "$root$bash_completion" "$root$zsh_completion" "$root$fish_completion"
    rm -f "$root$mandir"/sysg.1 "$root$mandir"/sysg-*.1 "$root$mandir"/sysg.1.gz "$root$mandir"/sysg-*.1.gz
}

uninstall_all() {
    if systemd_running; then
        # Stopping the supervisor stops every service it runs.
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
    rm -f "$root$bindir/sysg" "$root$unitdir/$unit"
    uninstall_extras
    if systemd_running; then
        systemctl daemon-reload
    fi
    if [ "$purge" = yes ]; then
        rm -rf "$root/etc/systemg" "$root/var/lib/systemg" "$root/var/log/systemg"
        if [ -z "$root" ]; then
            rm -rf /run/systemg
            if getent group systemg >/dev/null 2>&1; then
                if command -v groupdel >/dev/null 2>&1; then
                    groupdel systemg
                elif command -v delgroup >/dev/null 2>&1; then
                    delgroup systemg
                fi
            fi
        fi
        echo "removed systemg, its configuration, state and logs${root:+ under $root}"
    else
        echo "removed systemg${root:+ under $root}; /etc/systemg, /var/lib/systemg and /var/log/systemg are kept (--purge removes them)"
    fi
}

case "$action" in
    install) install_all ;;
    uninstall) uninstall_all ;;
esac
