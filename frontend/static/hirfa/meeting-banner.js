// The room page's meeting banner: whether the room's meeting is live and who
// is in it (the `meeting` frame, docs/protocol.md), with a link to join it.
// The markup is in room.html; this only shows, hides and fills it.

import { LOCALE } from "./dom.js";

/**
 * Keep the banner of `roomId` up to date on `hub` (the page's one socket).
 * Guarantees: the state is asked again after every (re)subscription, so a
 * meeting that started or ended while offline is shown rightly.
 */
export function watchMeeting(hub, roomId) {
  const banner = document.getElementById("meeting-banner");
  if (!banner) return;
  const people = document.getElementById("meeting-people");
  const start = document.getElementById("meeting-start");
  const list = "ListFormat" in Intl ? new Intl.ListFormat(LOCALE, { type: "conjunction" }) : null;

  const show = (frame) => {
    if (frame.room !== roomId) return;
    banner.hidden = !frame.live;
    if (start) start.hidden = !!frame.live;
    const names = (frame.participants || []).map((p) => p.name);
    people.textContent = list ? list.format(names) : names.join(", ");
    banner.dataset.count = String(names.length);
  };
  hub.on("meeting", show);
  hub.on("subscribed", (frame) => {
    if (frame.room === roomId) hub.request({ type: "meeting_info", room: roomId }).then(show, () => {});
  });
}
