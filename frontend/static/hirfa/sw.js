// Hirfa's service worker. The server prepends VERSION (a fingerprint of what follows and
// of the shell's URLs), SHELL (the offline page and the static files every page needs)
// and outbox.js (OUTBOX_SYNC, outboxStore: the chat outbox in IndexedDB, shared with the
// page).
//
// - static files (fingerprinted URLs under /static/): cache first, kept;
// - pages: network first; a room, the rooms list, the agenda and the notifications are
//   kept as last seen, to be read (not written) without a network; any other page
//   without a network is the offline page;
// - the socket, the API and every non-GET request go to the network untouched;
// - "sync": the chat outbox a page left in IndexedDB (socket.js) is sent over HTTP when
//   the link comes back, even with every tab closed.
/* global VERSION, SHELL, OUTBOX_SYNC, outboxStore */
const STATIC_CACHE = `hirfa-static-${VERSION}`;
const PAGES_CACHE = "hirfa-pages";
const KEPT_PAGES = [/^\/rooms\/(\d+\/)?$/, /^\/gatherings\/$/, /^\/notifications\/$/];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(STATIC_CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((n) => n.startsWith("hirfa-static-") && n !== STATIC_CACHE).map((n) => caches.delete(n)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

async function fromStatic(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(STATIC_CACHE)).put(request, response.clone());
  return response;
}

async function page(request, url) {
  const kept = KEPT_PAGES.some((re) => re.test(url.pathname));
  try {
    const response = await fetch(request);
    if (kept && response.ok && !response.redirected) {
      (await caches.open(PAGES_CACHE)).put(request, response.clone());
    }
    return response;
  } catch (error) {
    const cached = kept && (await caches.match(request, { cacheName: PAGES_CACHE }));
    return cached || (await caches.match(SHELL[0])) || Response.error();
  }
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/static/")) event.respondWith(fromStatic(request));
  else if (request.mode === "navigate") event.respondWith(page(request, url));
});

// --- Web Push: the hub's job worker sends {title, body, url, tag, count, silent} ---------

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  const shown = self.registration.showNotification(data.title || "Hirfa", {
    body: data.body || "",
    tag: data.tag,
    data: { url: data.url || "/notifications/" },
    icon: SHELL.find((u) => u.endsWith("icon-192.png")),
    silent: !!data.silent,
  });
  const badge =
    "setAppBadge" in self.navigator && Number.isFinite(data.count)
      ? self.navigator.setAppBadge(data.count).catch(() => {})
      : Promise.resolve();
  event.waitUntil(Promise.all([shown, badge]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => w.url === url);
      return open ? open.focus() : self.clients.openWindow(url);
    }),
  );
});

// --- Background sync of the chat outbox (socket.js keeps it in IndexedDB) ------------------

/** Send what is left, oldest first, each with its client_id (a page that sent it too
 * is harmless: the server stores it once). An item the server refused for good (room
 * gone, session ended, another member's token) is dropped; on no link, a 429 or a 5xx
 * the promise rejects, and the browser fires "sync" again later. */
async function outboxFlush() {
  const items = ((await outboxStore("readonly", (store) => store.getAll())) || []).sort((a, b) => a.at - b.at);
  let again = false;
  for (const item of items) {
    let response;
    try {
      response = await fetch(`/api/rooms/${item.room}/messages`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": item.csrf },
        body: JSON.stringify({
          client_id: item.client_id,
          text: item.text || "",
          reply_to: item.reply_to || null,
          attachments: item.attachments || [],
        }),
      });
    } catch {
      again = true;
      break;
    }
    if (response.status === 429 || response.status >= 500) {
      again = true;
      break;
    }
    await outboxStore("readwrite", (store) => store.delete(item.client_id));
  }
  if (again) throw new Error("outbox: the link is not back yet");
}

self.addEventListener("sync", (event) => {
  if (event.tag === OUTBOX_SYNC) event.waitUntil(outboxFlush());
});
