#!/usr/bin/env bash
# Install Debian's chromium for the browser test of the HTML report (tests/test_report_browser.py).
# Called by .ci/run (as root in CI), never by `make test`, which installs nothing system-wide.
# Exits 0 when a Chromium is available afterwards, 1 (after saying why) when it is not.
set -u
if [ -n "${BAYESMIX_CHROMIUM:-}" ]; then
  if [ -x "$BAYESMIX_CHROMIUM" ]; then
    echo "ensure_chromium: using BAYESMIX_CHROMIUM=$BAYESMIX_CHROMIUM"
    exit 0
  fi
  echo "ensure_chromium: BAYESMIX_CHROMIUM=$BAYESMIX_CHROMIUM is not executable"
  exit 1
fi
for name in chromium chromium-browser google-chrome google-chrome-stable chrome; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "ensure_chromium: found $(command -v "$name")"
    exit 0
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "ensure_chromium: chromium is missing and this is not root, so apt-get cannot install it;"
  echo "  install Debian's chromium (apt-get install chromium) or set BAYESMIX_CHROMIUM=/path/to/chromium"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: chromium is missing and apt-get is not available on this system;"
  echo "  install a Chromium and set BAYESMIX_CHROMIUM=/path/to/chromium"
  exit 1
fi
echo "ensure_chromium: installing Debian's chromium with apt-get..."
if ! apt-get update -qq; then
  echo "ensure_chromium: 'apt-get update' failed (no network or no package sources?)"
  exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "ensure_chromium: 'apt-get install chromium' failed"
  exit 1
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "ensure_chromium: apt-get reported success but 'chromium' is not on PATH"
  exit 1
fi
echo "ensure_chromium: installed $(chromium --version 2>/dev/null || command -v chromium)"
exit 0
