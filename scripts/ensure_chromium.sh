#!/bin/sh
# Makes sure Debian's Chromium is installed: the web UI tests (tests/e2e/test_ui.py) drive it with Playwright
# for Python (executable_path=/usr/bin/chromium), which never downloads a browser of its own.
#
# When it is missing it installs it if it runs as root with apt-get, and otherwise fails saying what to install.
set -eu

browser=/usr/bin/chromium
packages="chromium"

if [ ! -x "$browser" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure_chromium: installing $packages (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; }
    fi
    if [ ! -x "$browser" ]; then
        echo "ensure_chromium: the web UI tests need Debian's Chromium at $browser;" >&2
        echo "  run as root: apt-get install -y $packages" >&2
        exit 1
    fi
fi
