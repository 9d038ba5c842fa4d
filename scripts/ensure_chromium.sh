#!/usr/bin/env bash
# Install Debian's chromium for the browser test of the HTML report when it is missing.
# Never fails the build: the browser test skips itself (and says why) without Chromium.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium for the report's browser test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed; the browser test will be skipped"
else
  echo "chromium is not installed and cannot be installed here; the browser test will be skipped"
fi
exit 0
