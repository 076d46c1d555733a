#!/usr/bin/env bash
# The consoles' map library (Leaflet) and the API page's Swagger UI come from the npm
# registry at set-up and are served from console_ui/static/vendor; nothing is fetched by
# browsers from outside (the Content-Security-Policy would refuse it).
set -eu
cd "$(dirname "$0")/../console_ui"
fresh() { [ -f "$1" ] && [ "$1" -nt package.json ]; }
if fresh static/vendor/leaflet/leaflet.js && fresh static/vendor/swagger-ui/swagger-ui-bundle.js; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm is needed for the console's map library: apt-get install -y nodejs npm" >&2
  exit 1
fi
# No package here needs an install script (swagger-ui-dist pulls in a telemetry one).
npm install --no-audit --no-fund --silent --ignore-scripts
mkdir -p static/vendor/leaflet static/vendor/swagger-ui
cp -r node_modules/leaflet/dist/. static/vendor/leaflet/
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE; do
  cp "node_modules/swagger-ui-dist/$f" static/vendor/swagger-ui/
done
echo "console libraries installed (leaflet $(node -p 'require("leaflet/package.json").version')," \
  "swagger-ui $(node -p 'require("swagger-ui-dist/package.json").version'))"
