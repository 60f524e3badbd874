// Registers the service worker (sw.js, served from the root): the app installs, keeps
// its shell and the rooms read lately, and shows an offline page for the rest.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
}

// The rooms kept for offline reading and the unsent messages are the member's own: they
// go when he logs out.
document.addEventListener("submit", (event) => {
  const action = event.target.getAttribute("action") || "";
  if (!/\/logout\/$/.test(action)) return;
  if ("caches" in window) caches.delete("hirfa-pages");
  if ("indexedDB" in window) indexedDB.deleteDatabase("hirfa");
});
