#!/usr/bin/env bash
# Prints the path of a Chromium or Chrome for the browser tests (`make test` calls it).
# Looks for $CHROMIUM_PATH, then chromium, chromium-browser, google-chrome on PATH; when none
# is there, installs Debian's `chromium` package (as root or with passwordless sudo); else
# fails with one line saying what to install. Install output goes to stderr: stdout is the path.
set -uo pipefail

instruction="no Chromium or Chrome found: install Debian's chromium (apt-get install chromium), or set CHROMIUM_PATH to a Chrome/Chromium binary"

runs() {  # a browser that starts (not a stub such as Ubuntu's snap launcher without snapd)
    "$1" --version >/dev/null 2>&1
}

find_browser() {
    local name path
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        path=$(command -v "$name") || continue
        if runs "$path"; then
            echo "$path"
            return 0
        fi
    done
    return 1
}

if [ -n "${CHROMIUM_PATH:-}" ]; then
    # Named on purpose: never replaced by another browser behind the user's back.
    if [ -x "$CHROMIUM_PATH" ] && runs "$CHROMIUM_PATH"; then
        echo "$CHROMIUM_PATH"
        exit 0
    fi
    echo "CHROMIUM_PATH=$CHROMIUM_PATH does not run: point it at a Chrome/Chromium binary, or unset it to use Debian's chromium" >&2
    exit 1
fi

find_browser && exit 0

if command -v apt-get >/dev/null 2>&1; then
    if [ "$EUID" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        as_root=(none)
    fi
    if [ "${as_root[*]}" != none ]; then
        echo "Installing Debian's chromium for the browser tests ..." >&2
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may have no package lists yet: update once, then try again.
        "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >&2 \
            || { "${as_root[@]}" apt-get update -q >&2 && "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >&2; }
        find_browser && exit 0
    fi
fi

echo "$instruction" >&2
exit 1
