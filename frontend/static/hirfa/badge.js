// The unread-notification count, wherever it shows: the bell and the tab (elements
// marked data-unread-count), the page title "(n) …", and the installed app's badge
// (Badging API, where the browser has it). The server renders the first value; pages
// with a socket call setUnread() as notifications arrive.

const TITLE_COUNT = /^\(\d+\) /;

export function setUnread(count) {
  const n = Math.max(0, Number(count) || 0);
  document.body.dataset.unreadNotifications = String(n);
  for (const el of document.querySelectorAll("[data-unread-count]")) {
    el.textContent = String(n);
    el.hidden = n === 0;
  }
  const title = document.title.replace(TITLE_COUNT, "");
  document.title = n ? `(${n}) ${title}` : title;
  if ("setAppBadge" in navigator) {
    (n ? navigator.setAppBadge(n) : navigator.clearAppBadge()).catch(() => {});
  }
}

export function bumpUnread() {
  setUnread(Number(document.body.dataset.unreadNotifications || 0) + 1);
}

setUnread(document.body.dataset.unreadNotifications);
