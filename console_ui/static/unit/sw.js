// The unit app's service worker (scope /console/unit/): keeps the app shell on the device
// so the terminal opens with no signal. Only the shell's own files are answered from the
// cache; the API, the event stream and anything else always go to the network as if this
// worker were not here (a job, a status or a position must never be an old copy).
//
// Network first, the cache when the network fails or is too slow (bad signal): a deploy
// reaches the officer at the next load with signal, and the copy kept is always the last
// one that loaded.

const CACHE = "cad-unit-shell-v1";
const SHELL = [
  "/console/unit/",
  "/console/unit/manifest.webmanifest",
  "/console/unit/icons/icon-192.png",
  "/console/unit/icons/icon-512.png",
  "/console/css/console.css",
  "/console/css/unit.css",
  "/console/js/unit.js",
  "/console/js/api.js",
  "/console/js/common.js",
  "/console/js/outbox.js",
  "/console/js/retrieval.js",
  "/console/js/sound.js",
  "/console/js/stream.js",
];
const SHELL_PATHS = new Set(SHELL);
// A phone on one bar of signal can take far longer than this to answer; the cached copy
// is then better than a blank page.
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // "reload": past the HTTP cache, so the shell kept is what the server serves now.
      await cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE && name.startsWith("cad-unit-")) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

/** The shell entry a request is for, or null for everything this worker leaves alone. */
function shellKey(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  if (request.mode === "navigate" && (url.pathname === "/console/unit/" || url.pathname === "/console/unit/index.html")) {
    return "/console/unit/";
  }
  return SHELL_PATHS.has(url.pathname) ? url.pathname : null;
}

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then(async (res) => {
    if (res.ok) await cache.put(key, res.clone());
    return res;
  });
  let timer;
  const slow = new Promise((resolve) => {
    timer = setTimeout(resolve, NETWORK_WAIT_MS, null);
  });
  try {
    const res = await Promise.race([network, slow]);
    if (res) return res;
  } catch {
    // No network: the cached copy below.
  } finally {
    clearTimeout(timer);
  }
  const cached = await cache.match(key);
  if (cached) return cached;
  return network; // nothing kept: the network's own answer or error
}

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key === null) return; // not ours: the browser fetches it as usual
  event.respondWith(networkFirst(event.request, key));
});
