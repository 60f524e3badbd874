// Who is online in a room, as the room page lists it (docs/protocol.md, presence).
// The first page comes with `subscribed`; a small room's deltas name who came and
// went, so its list stays exact. A large room's deltas name nobody (`more: true`, the
// count): the names listed go stale, and are read again with `presence` pages while
// the list is in view, at most every REFRESH_MIN_MS, so a page never asks more often
// than the server announces. The member lists further pages on demand (`more()`).

/** Names per `presence` page (the server's maximum). */
export const PAGE = 100;
/** The least time between two readings of a stale list. The server announces a large
 * room at most every 10 s per process; with two processes this keeps one reading per
 * announcement period or so. */
export const REFRESH_MIN_MS = 5000;
/** A reading of a stale list reads at most this many pages (the member may have listed
 * more: the list is then cut back to these, with "show more" again). */
export const REFRESH_PAGES_MAX = 5;

export class OnlineList {
  /**
   * `request(frame)` sends a frame and resolves with its answer (Hub.request);
   * `changed()` is called whenever what is listed or the count changes.
   */
  constructor({ room, request, changed, now = () => Date.now(), later = (fn, ms) => setTimeout(fn, ms) }) {
    this.room = room;
    this.request = request;
    this.changed = changed;
    this.now = now;
    this.later = later;
    this.people = new Map(); // user id → name, in the order listed
    this.count = 0; // online in all (the list may hold only some)
    this.wanted = PAGE; // how many names the member asked to see
    this.visible = true;
    this.stale = false;
    this.busy = false;
    this.moreWanted = false; // "show more" tapped while a reading was on its way
    this.timer = null;
    this.lastRead = -Infinity;
  }

  /** Whether some of those online are not listed. */
  get hasMore() {
    return this.count > this.people.size;
  }

  /** The listed names, [id, name] pairs: by name when everyone is listed, else page by page. */
  entries() {
    const items = [...this.people.entries()];
    return this.hasMore ? items : items.sort((a, b) => a[1].localeCompare(b[1]));
  }

  subscribed(frame) {
    this.people = byName(frame.online || []);
    this.count = frame.online_count ?? this.people.size;
    this.wanted = PAGE;
    this.stale = false;
    this.changed();
  }

  delta(frame) {
    for (const person of frame.left || []) this.people.delete(person.id);
    for (const person of frame.joined || []) this.people.set(person.id, person.name);
    this.count = frame.online_count;
    // Lists cut short, or a large room's count alone: the names listed no longer say who is here.
    if (frame.more) {
      this.stale = true;
      this.refreshSoon();
    }
    this.changed();
  }

  /** A `presence_list` nobody on this page asked for (another module's request). */
  list(frame) {
    if (!frame.offset) this.people.clear();
    for (const [id, name] of byName(frame.online)) this.people.set(id, name);
    this.count = frame.online_count;
    this.changed();
  }

  /** The list came into view or left it: a stale list is read once it is seen. */
  show(visible) {
    this.visible = visible;
    if (visible && this.stale) this.refreshSoon();
  }

  /** List the next page of who is online (once a reading on its way is done). */
  async more() {
    if (this.busy) {
      this.moreWanted = true;
      return;
    }
    this.moreWanted = false;
    this.busy = true;
    try {
      const page = await this.ask(this.people.size);
      for (const [id, name] of byName(page.online)) this.people.set(id, name);
      this.count = page.online_count;
      this.wanted = Math.max(this.wanted, this.people.size);
    } finally {
      this.busy = false;
      this.changed();
    }
    if (this.stale) this.refreshSoon();
  }

  refreshSoon() {
    if (!this.visible || this.timer !== null || this.busy) return;
    const wait = Math.max(0, this.lastRead + REFRESH_MIN_MS - this.now());
    this.timer = this.later(() => {
      this.timer = null;
      this.refresh();
    }, wait);
  }

  /** Read again the pages the member listed (up to REFRESH_PAGES_MAX), replacing the list. */
  async refresh() {
    if (!this.visible || this.busy) return;
    this.busy = true;
    this.stale = false;
    this.lastRead = this.now();
    const pages = Math.min(REFRESH_PAGES_MAX, Math.max(1, Math.ceil(Math.min(this.wanted, this.count) / PAGE)));
    const fresh = new Map();
    let count = this.count;
    try {
      for (let n = 0; n < pages; n++) {
        const page = await this.ask(n * PAGE);
        for (const [id, name] of byName(page.online)) fresh.set(id, name);
        count = page.online_count;
        if (page.online.length < PAGE) break;
      }
      this.people = fresh;
      this.count = count;
    } catch {
      // Offline: the next `subscribed` brings a fresh first page.
    } finally {
      this.busy = false;
      this.changed();
    }
    // "Show more" tapped during the reading: the next page now.
    if (this.moreWanted) await this.more();
    // A delta that came during the reading: read again, in its turn.
    else if (this.stale) this.refreshSoon();
  }

  ask(offset) {
    return this.request({ type: "presence", room: this.room, offset, limit: PAGE });
  }
}

function byName(people) {
  return new Map([...people].sort((a, b) => a.name.localeCompare(b.name)).map((p) => [p.id, p.name]));
}
