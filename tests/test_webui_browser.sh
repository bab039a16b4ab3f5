#!/usr/bin/env bash
# test_webui_browser.sh (ctest label: heavy): the chat page that `bitnet serve` answers at GET /, in
# headless chromium driven by puppeteer-core (tests/js/server/webui_browser.mjs): a streamed answer
# growing in the page, the system prompt and settings in the request, Stop ending the stream (and
# the server's generation), the model name and speed shown, code blocks rendered with HTML kept as
# text, errors shown, the API key field on a server with keys, and no Content-Security-Policy
# violation. Writes a screenshot to $BITNET_BUILD_DIR/webui-chat.png. Installs nothing: skipped
# (77) without node, chromium (Debian: apt-get install chromium) or puppeteer-core (npm ci in
# tests/js, which never downloads a browser).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
set -euo pipefail
chromium=${CHROMIUM:-/usr/bin/chromium}
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
[[ -x $chromium ]] || { echo "$chromium not found (Debian: apt-get install --no-install-recommends chromium): skipped"; exit 77; }
[[ -d $src/tests/js/node_modules/puppeteer-core ]] || { echo "tests/js/node_modules/puppeteer-core missing (npm ci in tests/js): skipped"; exit 77; }
bn_make_tmp webui_browser
bn_synth "$tmp/tiny.gguf" --ctx 16384
build=${BITNET_BUILD_DIR:-$(dirname "$(dirname "$bin")")}
PUPPETEER_SKIP_DOWNLOAD=1 BITNET_BIN="$bin" MODEL="$tmp/tiny.gguf" CHROMIUM="$chromium" TMP="$tmp" \
    SCREENSHOT="$build/webui-chat.png" HOME="$tmp" timeout 300 node "$src/tests/js/server/webui_browser.mjs"
echo "screenshot: $build/webui-chat.png"
