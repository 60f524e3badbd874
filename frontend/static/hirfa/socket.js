// The one websocket of a page (protocol: docs/protocol.md).
//
// Guarantees:
// - it reconnects by itself, with exponential backoff and jitter, and at once
//   on close codes 4010 ("reconnect and resume") and 1012 (a server restarts),
//   slowly on 4009 (the member has too many sockets open: another tab may close
//   meanwhile), and on 4013 (the server lets a crowd in a few at a time) after
//   the close reason's retry_after, plus up to a quarter of it as jitter;
// - for each watched room it remembers the last rev it saw and resubscribes
//   with since_rev, so every change made while away is replayed; a jump in
//   revs on the live stream triggers a fetch of what is missing;
// - sends leave through one ordered outbox, each with a client_id kept until
//   the server acks it; a resend after a reconnect reuses the client_id, so
//   the server never stores a message twice. The outbox survives a reload
//   (sessionStorage) and the tab's closing: each item is also kept in IndexedDB,
//   where the service worker (sw.js, "sync") finds what is left and sends it over
//   HTTP when the link comes back, with the same client_id.

import { OUTBOX_SYNC, outboxStore } from "./outbox.js";

const PROTOCOL_VERSION = 2;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
// After check() (a call's media stalled: the network may be changing), for this long the
// reconnect attempts come at most this far apart: a phone in a call wants back at once.
const HURRY_MS = 30000;
const HURRY_BACKOFF_MS = 500;
const OUTBOX_KEY = "hirfa.outbox";
const RETRYABLE = new Set(["rate_limited", "slow_mode", "internal_error"]);
const CLOSE_BUSY = 4013;

/** How long a 4013 close asks to wait, in ms (its reason is {"retry_after": seconds}),
 * with up to a quarter more as jitter; a reason that cannot be read counts as 1 s. */
export function busyDelayMs(reason, random = Math.random) {
  let seconds = 1;
  try {
    const asked = Number(JSON.parse(reason || "{}").retry_after);
    if (Number.isFinite(asked) && asked >= 0) seconds = Math.min(asked, 60);
  } catch {
    // not JSON: the default above
  }
  return Math.round(seconds * 1000 * (1 + random() / 4));
}
/** The page's CSRF token: the worker sends with it, and it changes when someone else logs
 * in on this browser, so an item left by one member is never sent as another. */
const csrfToken = () => document.querySelector("[name=csrfmiddlewaretoken]")?.value || "";

/** A random id usable as client_id (crypto.randomUUID needs a secure context). */
export function newId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Hub {
  constructor({ url, loginUrl = "/login/" } = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = url || `${scheme}//${location.host}/ws/`;
    this.loginUrl = loginUrl;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.checkTimer = null;
    this.hurryUntil = 0;
    this.lastHeard = 0;
    this.pingMs = 25000;
    this.user = null;
    this.handlers = new Map();
    this.rooms = new Map();
    this.requests = new Map();
    this.refSeq = 0;
    this.outbox = this.loadOutbox();
    this.inflight = null;
    this.holdUntil = 0;
    addEventListener("online", () => {
      this.wakeUp();
      this.check();
    });
    addEventListener("pagehide", () => {
      this.saveOutbox();
      if (this.outbox.length) this.askSync();
    });
    this.adoptStored();
  }

  // --- events for the page -------------------------------------------------

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return this;
  }

  emit(type, data) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(data);
      } catch (err) {
        console.error(err);
      }
    }
  }

  status(state, extra = {}) {
    this.emit("status", { state, ...extra });
  }

  // --- connection ----------------------------------------------------------

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    this.status("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.retryLater();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      this.raw({ type: "hello", v: PROTOCOL_VERSION });
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatch(frame);
    };
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
  }

  closed(ws, code, reason = "") {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    this.inflight = null;
    clearInterval(this.heartbeat);
    for (const room of this.rooms.values()) {
      room.state = "idle";
      room.fetching = false;
    }
    for (const { reject } of this.requests.values()) reject({ code: "disconnected" });
    this.requests.clear();
    if (code === 4003) {
      this.stopped = true;
      location.assign(`${this.loginUrl}?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (code === 4002) {
      this.stopped = true;
      this.status("reload");
      return;
    }
    // 4010: this socket fell behind; 1012: the server restarts (the others take over).
    const atOnce = code === 4010 || code === 1012;
    if (atOnce) this.attempt = 0;
    if (code === 4009) {
      this.retryLater(BACKOFF_MAX_MS, "too_many");
      return;
    }
    if (code === CLOSE_BUSY) {
      // The server said when: its turns are spread over the crowd, so no hurrying and no
      // growing backoff (this was not a failure of the link).
      this.retryIn(busyDelayMs(reason), "busy");
      return;
    }
    this.retryLater(atOnce ? 300 : null);
  }

  retryLater(capMs = null, state = "offline") {
    if (this.stopped || this.timer) return;
    let cap = capMs ?? Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    if (Date.now() < this.hurryUntil) cap = Math.min(cap, HURRY_BACKOFF_MS);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryIn(Math.round(cap / 2 + (Math.random() * cap) / 2), state);
  }

  retryIn(delay, state) {
    if (this.stopped || this.timer) return;
    this.status(state, { retryIn: delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnect now if waiting (the browser came back online, or the user asked). */
  wakeUp() {
    if (this.timer) {
      this.attempt = 0;
      this.connect();
    }
  }

  raw(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** A fire-and-forget frame (typing, read): dropped when offline. */
  hint(frame) {
    return this.ready && this.raw(frame);
  }

  /** Send a frame and wait for the reply carrying the same ref; rejects with the error frame. */
  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.ready) {
        reject({ code: "disconnected" });
        return;
      }
      const ref = `r${++this.refSeq}`;
      this.requests.set(ref, { resolve, reject });
      this.raw({ ...frame, ref });
    });
  }

  /**
   * The link may have changed under the socket (the page's media connection
   * stalled: a phone left Wi-Fi for 4G, and a TCP connection does not follow its
   * address): ping now, and start over at once if nothing is heard within
   * `graceMs`; retries come at least every second for a while. The heartbeat
   * alone notices a dead socket after 35 s.
   */
  check(graceMs = 1500) {
    // Until the link is back, retries come at least every second (not 4, 8, 16 s later).
    this.hurryUntil = Date.now() + HURRY_MS;
    const ws = this.ws;
    if (!ws || !this.ready || this.checkTimer) return;
    const asked = Date.now();
    this.raw({ type: "ping" });
    this.checkTimer = setTimeout(() => {
      this.checkTimer = null;
      if (this.ws !== ws || this.lastHeard >= asked) return;
      this.attempt = 0;
      ws.close();
      this.closed(ws, 1006);
    }, graceMs);
  }

  startHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (!this.ws) return;
      // Nothing heard for a whole ping period and a grace: the link is dead, start over.
      if (Date.now() - this.lastHeard > this.pingMs + 10000) {
        const ws = this.ws;
        ws.close();
        this.closed(ws, 1006);
        return;
      }
      this.raw({ type: "ping" });
    }, this.pingMs);
  }

  // --- incoming ------------------------------------------------------------

  dispatch(frame) {
    const pending = frame.ref && this.requests.get(frame.ref);
    if (pending) {
      this.requests.delete(frame.ref);
      frame.type === "error" ? pending.reject(frame) : pending.resolve(frame);
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.ready = true;
        this.attempt = 0;
        this.user = frame.user;
        this.pingMs = Math.max(5, frame.ping_seconds || 25) * 1000;
        this.startHeartbeat();
        this.status("online");
        for (const id of this.rooms.keys()) this.subscribe(id);
        this.pump();
        break;
      case "subscribed":
        this.subscribed(frame);
        break;
      case "message":
        this.live(frame);
        break;
      case "ack":
        this.acked(frame);
        break;
      case "removed":
        this.rooms.delete(frame.room);
        this.emit("removed", frame);
        break;
      case "resync":
        // The server's live bus was cut off: fetch what it may have dropped.
        for (const id of frame.rooms || []) {
          const room = this.rooms.get(id);
          if (room && room.resume && room.rev !== null) this.fill(id);
        }
        this.emit("resync", frame);
        break;
      case "error":
        this.refused(frame);
        break;
      case "pong":
        break;
      default:
        this.emit(frame.type, frame);
    }
  }

  // --- rooms ---------------------------------------------------------------

  /**
   * Follow a room's live events. With `resume` (the room page), `rev` is the
   * last rev the page holds and every later change is replayed; without it
   * (the rooms list) only unread counts and new messages matter.
   */
  watch(roomId, { rev = null, resume = true } = {}) {
    this.rooms.set(roomId, { rev, resume, state: "idle", ahead: new Set(), fetching: false });
    if (this.ready) this.subscribe(roomId);
  }

  subscribe(roomId) {
    const room = this.rooms.get(roomId);
    room.state = "subscribing";
    const frame = { type: "subscribe", room: roomId, ref: `sub:${roomId}` };
    if (room.resume && room.rev !== null) frame.since_rev = room.rev;
    this.raw(frame);
  }

  subscribed(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    room.state = "live";
    room.rev = Math.max(room.rev ?? 0, frame.rev);
    this.settle(room);
    this.emit("subscribed", frame);
    if (room.resume && (frame.more || room.ahead.size)) this.fill(frame.room);
  }

  /** Advance the room's rev over the revs already seen just above it. */
  settle(room) {
    for (const rev of room.ahead) if (rev <= room.rev) room.ahead.delete(rev);
    while (room.ahead.has(room.rev + 1)) {
      room.ahead.delete(room.rev + 1);
      room.rev += 1;
    }
  }

  live(message) {
    const room = this.rooms.get(message.room);
    if (room && room.state === "live" && room.resume) {
      if (message.rev === room.rev + 1) {
        room.rev = message.rev;
        this.settle(room);
      } else if (message.rev > room.rev + 1) {
        room.ahead.add(message.rev);
        this.fill(message.room);
      }
    }
    // During a replay revs may skip (a message edited twice carries its last rev only);
    // `subscribed` then gives the rev the replay reached.
    this.emit("message", message);
  }

  /** Fetch every change after the room's rev until nothing is missing. */
  async fill(roomId) {
    const room = this.rooms.get(roomId);
    if (!room || room.fetching || room.state !== "live") return;
    room.fetching = true;
    try {
      for (;;) {
        const page = await this.request({ type: "fetch", room: roomId, since_rev: room.rev });
        let top = room.rev;
        for (const message of page.messages) {
          top = Math.max(top, message.rev);
          this.emit("message", message);
        }
        room.rev = top;
        this.settle(room);
        if (!page.more && (room.ahead.size === 0 || page.messages.length === 0)) break;
      }
    } catch {
      // Disconnected: the resubscription replays from room.rev.
    } finally {
      room.fetching = false;
    }
  }

  // --- outbox --------------------------------------------------------------

  /** Queue a message; returns its client_id. It is sent, and resent, until acked. */
  post(roomId, { text = "", reply_to = null, attachments = [] }) {
    const item = { client_id: newId(), room: roomId, text, attachments, state: "queued" };
    if (reply_to) item.reply_to = reply_to;
    this.outbox.push(item);
    this.saveOutbox();
    this.keepStored(item);
    this.emit("outbox", { ...item });
    this.pump();
    return item.client_id;
  }

  /** Keep `item` where the service worker finds it; with no link, ask it to send when
   * the link returns (then even if this tab is closed by then). */
  keepStored(item) {
    const csrf = csrfToken();
    if (!csrf || typeof indexedDB === "undefined") return;
    outboxStore("readwrite", (store) => store.put({ ...item, csrf, at: Date.now() }))
      .then(() => this.ready || this.askSync())
      .catch(() => {});
  }

  forgetStored(clientId) {
    if (typeof indexedDB === "undefined") return;
    outboxStore("readwrite", (store) => store.delete(clientId)).catch(() => {});
  }

  askSync() {
    navigator.serviceWorker?.ready.then((reg) => reg.sync?.register(OUTBOX_SYNC)).catch(() => {});
  }

  /** Items a closed tab of this member left unsent (not yet sent by the worker): this
   * page sends them too; the server stores each client_id once. */
  adoptStored() {
    const csrf = csrfToken();
    if (!csrf || typeof indexedDB === "undefined") return;
    outboxStore("readonly", (store) => store.getAll())
      .then((items) => {
        const known = new Set(this.outbox.map((i) => i.client_id));
        const mine = (items || []).filter((i) => i.csrf === csrf && !known.has(i.client_id));
        mine.sort((a, b) => a.at - b.at);
        for (const { csrf: _c, at: _a, ...item } of mine) {
          item.state = "queued";
          this.outbox.push(item);
          this.emit("outbox", { ...item });
        }
        if (mine.length) {
          this.saveOutbox();
          this.pump();
        }
      })
      .catch(() => {});
  }

  pending(roomId) {
    return this.outbox.filter((item) => item.room === roomId);
  }

  pump() {
    if (!this.ready || this.inflight) return;
    const wait = this.holdUntil - Date.now();
    if (wait > 0) {
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => this.pump(), wait);
      return;
    }
    const item = this.outbox.find((i) => i.state === "queued");
    if (!item) return;
    this.inflight = item;
    const frame = {
      type: "send",
      ref: `send:${item.client_id}`,
      room: item.room,
      client_id: item.client_id,
      text: item.text,
      attachments: item.attachments,
    };
    if (item.reply_to) frame.reply_to = item.reply_to;
    this.raw(frame);
  }

  acked(frame) {
    if (frame.ref && frame.ref.startsWith("send:")) {
      const clientId = frame.ref.slice(5);
      this.outbox = this.outbox.filter((item) => item.client_id !== clientId);
      this.saveOutbox();
      this.forgetStored(clientId);
      if (this.inflight && this.inflight.client_id === clientId) this.inflight = null;
      this.emit("sent", { client_id: clientId, room: frame.room, id: frame.id, rev: frame.rev });
      this.expect(frame.room, frame.rev);
      this.pump();
      return;
    }
    this.emit("ack", frame);
  }

  refused(frame) {
    const ref = frame.ref || "";
    if (ref.startsWith("send:")) {
      const clientId = ref.slice(5);
      const item = this.outbox.find((i) => i.client_id === clientId);
      if (this.inflight && this.inflight.client_id === clientId) this.inflight = null;
      if (item && RETRYABLE.has(frame.code) && (item.tries = (item.tries || 0) + 1) <= 8) {
        this.holdUntil = Date.now() + Math.max(0.5, frame.retry_after || 2) * 1000;
        this.emit("error", frame);
      } else if (item) {
        item.state = "failed";
        this.outbox = this.outbox.filter((i) => i !== item);
        this.saveOutbox();
        this.forgetStored(clientId);
        this.emit("failed", { ...item, code: frame.code, message: frame.message });
      }
      this.pump();
      return;
    }
    if (ref.startsWith("sub:")) {
      const roomId = Number(ref.slice(4));
      if (frame.code === "not_found") {
        this.rooms.delete(roomId);
        this.emit("removed", { room: roomId, reason: "not_found" });
        return;
      }
    }
    this.emit("error", frame);
  }

  /** The ack names the rev of our message: if its live event never comes, fetch it. */
  expect(roomId, rev) {
    const room = this.rooms.get(roomId);
    if (!room || !room.resume || !rev) return;
    setTimeout(() => {
      if (room.state === "live" && room.rev < rev && this.rooms.get(roomId) === room) {
        room.ahead.add(rev);
        this.fill(roomId);
      }
    }, 3000);
  }

  loadOutbox() {
    try {
      const items = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || "[]");
      return Array.isArray(items) ? items.filter((i) => i && i.client_id && i.room) : [];
    } catch {
      return [];
    }
  }

  saveOutbox() {
    try {
      sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(this.outbox));
    } catch {
      // Private mode or a full storage: the outbox still lives in memory.
    }
  }
}
