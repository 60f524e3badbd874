// The rooms list: keeps each followed room's unread count live over the socket.

import { pageData } from "./dom.js";
import { Hub } from "./socket.js";

const T = pageData("i18n");
const C = pageData("config");
const status = document.getElementById("status");
const rows = new Map();
for (const li of document.querySelectorAll("#followed [data-room]")) rows.set(Number(li.dataset.room), li);

// Per room: the last message id counted, so a message seen twice (edit, reaction) counts once.
const lastCounted = new Map();
const unread = new Map(C.rooms.map((r) => [r.id, r.unread]));

function show(roomId) {
  const li = rows.get(roomId);
  if (!li) return;
  const badge = li.querySelector("[data-unread]");
  const count = unread.get(roomId) || 0;
  badge.hidden = count === 0;
  badge.querySelector(".count").textContent = count > 99 ? "99+" : String(count);
  li.classList.toggle("has-unread", count > 0);
  // The most recently active room goes first, as the page first listed them.
  if (count > 0 && li.parentElement && li.parentElement.firstElementChild !== li) li.parentElement.prepend(li);
}

const hub = new Hub({ loginUrl: C.loginUrl || "/login/" });
window.hirfaHub = hub;

hub.on("status", ({ state, retryIn }) => {
  const text = {
    connecting: T.connecting,
    offline: T.offline.replace("%(seconds)s", String(Math.ceil((retryIn || 0) / 1000))),
    too_many: T.tooManySockets.replace("%(seconds)s", String(Math.ceil((retryIn || 0) / 1000))),
    busy: T.busy.replace("%(seconds)s", String(Math.ceil((retryIn || 0) / 1000))),
    reload: T.reload,
  }[state];
  status.hidden = !text;
  status.textContent = text || "";
});

hub.on("subscribed", (frame) => {
  lastCounted.set(frame.room, frame.last_id);
  unread.set(frame.room, frame.unread);
  show(frame.room);
});

hub.on("message", (message) => {
  const last = lastCounted.get(message.room) ?? Infinity;
  if (message.id <= last) return;
  lastCounted.set(message.room, message.id);
  if (message.deleted || !message.author || message.author.id === C.me) return;
  unread.set(message.room, (unread.get(message.room) || 0) + 1);
  show(message.room);
});

hub.on("unread", (frame) => {
  unread.set(frame.room, frame.unread);
  show(frame.room);
});

hub.on("removed", (frame) => {
  rows.get(frame.room)?.remove();
  rows.delete(frame.room);
});

for (const id of rows.keys()) hub.watch(id, { resume: false });
hub.start();
