#!/bin/sh
# A package build with npm, offline: the library packages/slugkit is built (its prepack script)
# and tested, packed into dist/, installed from that tarball by the app, which is then built and
# tested. No registry is involved; npm's cache lives in the project.
set -eu
export npm_config_cache="$PWD/.npm-cache" npm_config_offline=true npm_config_audit=false \
    npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=error
mkdir -p dist
cd packages/slugkit
npm test --silent
# npm pack prints the prepack build's output, then the tarball's name.
echo "packed $(npm pack --silent --pack-destination ../../dist | tail -n 1)"
cd ../..
echo "tarball:"
tar -tzf dist/slugkit-1.2.0.tgz | sort | sed 's/^/  /'
cd app
npm install --silent
echo "installed slugkit $(node -p 'require("slugkit/package.json").version')"
npm run --silent build
npm test --silent
