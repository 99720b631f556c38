#!/usr/bin/env bash
# Rebuilds the JS client (clients/js) and copies its compiled ES module to
# dashboard/web/presenced-client.js, the copy the dashboard serves (embedded into presenced at build
# time). Run it after changing the client; the dashboard's tests fail while the copy is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/clients/js"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
cp dist/index.js "$root/dashboard/web/presenced-client.js"
echo "update-bundle: dashboard/web/presenced-client.js is now the build of clients/js"
