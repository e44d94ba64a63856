#!/usr/bin/env bash
# Refreshes the Swagger UI files that logstats-api embeds for GET /docs (api/src/routes/docs.rs):
# installs the version pinned by package.json + package-lock.json with `npm ci` and copies the
# few built files it serves, and their licences, into dist/ (committed, so building the API needs
# no npm). To upgrade: change the version in package.json, run `npm install --package-lock-only
# --ignore-scripts` here, then this script, then `cargo test -p logstats-api --test api docs::`.
set -euo pipefail
cd "$(dirname "$0")"
# --ignore-scripts: swagger-ui-dist's only dependency is an install-time analytics hook.
npm ci --ignore-scripts --no-audit --no-fund
mkdir -p dist
for file in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "node_modules/swagger-ui-dist/$file" "dist/$file"
done
# Both end with a source map comment; the maps are not served (browsers would ask for them).
sed -i -e '/^\/\/# sourceMappingURL=/d' -e '/^\/\*# sourceMappingURL=.*\*\/$/d' \
  dist/swagger-ui-bundle.js dist/swagger-ui.css
echo "swagger-ui-dist $(node -p 'require("./node_modules/swagger-ui-dist/package.json").version') copied to $(pwd)/dist"
