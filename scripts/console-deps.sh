#!/usr/bin/env bash
# The consoles' map library (Leaflet) comes from the npm registry at set-up and is
# served from console_ui/static/vendor; nothing is fetched by browsers from outside.
set -eu
cd "$(dirname "$0")/../console_ui"
if [ -f static/vendor/leaflet/leaflet.js ] && [ static/vendor/leaflet/leaflet.js -nt package.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm is needed for the console's map library: apt-get install -y nodejs npm" >&2
  exit 1
fi
npm install --no-audit --no-fund --silent
mkdir -p static/vendor/leaflet
cp -r node_modules/leaflet/dist/. static/vendor/leaflet/
echo "console map library installed (leaflet $(node -p 'require("leaflet/package.json").version'))"
