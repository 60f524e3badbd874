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

// A form the server refused: the field at fault (named by the message, or marked by
// Django's form) is marked and focused; hirfa.css keeps it clear of the sticky top bar.
const refused = document.querySelector(".flash [data-field]");
const named = refused && document.querySelector(`form [name="${CSS.escape(refused.dataset.field)}"]`);
if (named) {
  named.setAttribute("aria-invalid", "true");
  named.setAttribute("aria-describedby", refused.id);
}
const wrong = named || document.querySelector("form [aria-invalid='true']");
if (wrong && !document.querySelector("[autofocus]")) wrong.focus();
