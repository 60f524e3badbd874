// The room page: messages (live, older, missed), typing, presence, reply, edit,
// delete, react, images, voice messages (voice.js), report and the moderators' actions.
// Message text is rendered by markdown.js (DOM nodes, never markup).

import { $, LOCALE, h, icon, pageData, translator } from "./dom.js";
import { Hub } from "./socket.js";
import { renderMarkdown } from "./markdown.js";
import { watchMeeting } from "./meeting-banner.js";
import { bumpUnread } from "./badge.js";
import { canRecord, setupRecorder, voicePlayer } from "./voice.js";
import { OnlineList } from "./online.js";

const T = pageData("i18n");
const C = pageData("config");
const ROOM = C.room;
const ME = C.me;
const LANG = LOCALE;

const els = {
  log: $("log"),
  list: $("messages"),
  older: $("older"),
  beginning: $("beginning"),
  jump: $("jump"),
  typing: $("typing"),
  status: $("status"),
  composer: $("composer"),
  text: $("text"),
  send: $("send"),
  file: $("file"),
  context: $("context"),
  contextText: $("context-text"),
  contextCancel: $("context-cancel"),
  images: $("pending-images"),
  online: $("online"),
  onlineTitle: $("online-title"),
  onlineCount: $("online-count"),
  onlineMoreRow: $("online-more-row"),
  onlineMore: $("online-more"),
  onlineListed: $("online-listed"),
  mutedNotice: $("muted-notice"),
  mic: $("mic"),
};

/** Fill a translated string's %(name)s placeholders. */
export const fmt = translator(T);


const csrf = () => document.querySelector("[name=csrfmiddlewaretoken]")?.value || "";

// --- state ---------------------------------------------------------------------

const messages = new Map(); // id → message frame
const nodes = new Map(); // id → <li>
const pendingNodes = new Map(); // client_id → <li>
const typers = new Map(); // user id → {name, until}
let replyTo = null;
let editing = null;
let readId = C.readId || 0;
let loadingOlder = false;
let hasOlder = !!C.more;
let uploads = [];
const voiceIds = new Set(); // attachments of this page's voice messages not yet acknowledged
let removed = false;

const outboxList = h("ol", { class: "messages outbox", "aria-label": T.sending });
els.list.after(outboxList);

const toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
document.body.append(toasts);

function toast(text, kind = "info") {
  const item = h("div", { class: `toast toast-${kind}`, text });
  toasts.append(item);
  setTimeout(() => item.remove(), 6000);
}

function errorText(frame) {
  return T[`err_${frame.code}`] || frame.message || T.err_other;
}

// --- time ------------------------------------------------------------------------

const timeFmt = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayFmt = new Intl.DateTimeFormat(LANG, { day: "numeric", month: "short" });
const fullFmt = new Intl.DateTimeFormat(LANG, { dateStyle: "full", timeStyle: "short" });
const numberFmt = new Intl.NumberFormat(LANG);

function when(iso) {
  const date = new Date(iso);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return {
    short: sameDay ? timeFmt.format(date) : `${dayFmt.format(date)} ${timeFmt.format(date)}`,
    full: fullFmt.format(date),
  };
}

// --- scrolling -------------------------------------------------------------------

const atBottom = () => els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 80;
// Whether the reader is at the newest message: it stays in view while the log grows
// under it (a lazy image that loads, a reaction), and not once he scrolls up.
let pinned = true;
const toBottom = () => {
  els.log.scrollTop = els.log.scrollHeight;
  els.jump.hidden = true;
  pinned = true;
};
if ("ResizeObserver" in window) {
  new ResizeObserver(() => {
    if (pinned) els.log.scrollTop = els.log.scrollHeight;
  }).observe(els.list);
}

els.jump.addEventListener("click", () => {
  toBottom();
  markRead();
});
els.log.addEventListener("scroll", () => {
  pinned = atBottom();
  if (pinned) {
    els.jump.hidden = true;
    markRead();
  }
});

// --- rendering ----------------------------------------------------------------

function excerpt(message) {
  if (!message) return T.originalMissing;
  if (message.deleted) return T.deleted;
  const kinds = (message.attachments || []).map((a) => a.kind);
  const text =
    message.text || message.card?.title || (kinds.includes("voice") ? T.voiceMessage : kinds.length ? T.image : "");
  return text.length > 90 ? `${text.slice(0, 90)}…` : text;
}

function renderReactions(message) {
  const box = h("div", { class: "reactions" });
  for (const [emoji, users] of Object.entries(message.reactions || {})) {
    if (!users.length) continue;
    const mine = users.includes(ME);
    box.append(
      h(
        "button",
        {
          type: "button",
          class: mine ? "reaction mine" : "reaction",
          "data-action": "react",
          "data-emoji": emoji,
          "aria-pressed": mine ? "true" : "false",
        },
        emoji,
        h("span", { class: "count", text: String(users.length) }),
      ),
    );
  }
  return box.childElementCount ? box : null;
}

/** What a message is about (a product, an exchange post, a buyer's enquiry): a link with its
 * photo, title, price and detail. Only the server attaches cards (docs/protocol.md). */
function renderCard(card) {
  return h(
    "a",
    { class: `msg-card card-${card.kind}`, href: card.url, "data-kind": card.kind },
    card.image ? h("img", { src: card.image, alt: "", width: 64, height: 64, loading: "lazy" }) : null,
    h(
      "span",
      { class: "msg-card-text" },
      h("strong", { dir: "auto", text: card.title }),
      card.price ? h("span", { class: "msg-card-price", dir: "auto", text: card.price }) : null,
      card.detail ? h("span", { class: "msg-card-detail", dir: "auto", text: card.detail }) : null,
    ),
  );
}

function renderMessage(message) {
  const mine = message.author && message.author.id === ME;
  const classes = ["msg"];
  if (mine) classes.push("mine");
  if (message.deleted) classes.push("deleted");
  if ((message.mentions || []).includes(ME)) classes.push("mentioned");
  const time = when(message.created_at);
  const li = h("li", { class: classes.join(" "), id: `m-${message.id}`, "data-id": message.id });
  const head = h(
    "div",
    { class: "msg-head" },
    h("bdi", { class: "author", text: message.author ? message.author.name : T.unknownAuthor }),
    h("time", { dateTime: message.created_at, title: time.full, text: time.short }),
    message.edited_at && !message.deleted ? h("span", { class: "edited", text: `(${T.edited})` }) : null,
  );
  li.append(head);
  if (message.reply_to && !message.deleted) {
    const original = messages.get(message.reply_to);
    li.append(
      h(
        "button",
        { type: "button", class: "quote", "data-action": "goto", "data-target": message.reply_to },
        original?.author ? h("bdi", { class: "author", text: original.author.name }) : null,
        original?.author ? " " : null,
        h("span", { dir: "auto", text: excerpt(original) }),
      ),
    );
  }
  if (!message.deleted && message.card) li.append(renderCard(message.card));
  const body = h("div", { class: "msg-text", dir: "auto" });
  if (message.deleted) body.append(h("em", { text: T.deleted }));
  else body.append(renderMarkdown(message.text));
  li.append(body);
  const files = message.deleted ? [] : message.attachments || [];
  for (const voice of files.filter((a) => a.kind === "voice")) {
    li.append(
      voicePlayer(voice, {
        T,
        fmt,
        me: ME,
        mine,
        sprite: C.icons,
        numberFormat: numberFmt,
        onPlayed: () => !mine && !voice.listened_by.includes(ME) && markListened(voice),
      }),
    );
  }
  const images = files.filter((a) => a.kind !== "voice");
  if (images.length) {
    const pics = h("div", { class: "attachments" });
    for (const a of images) {
      pics.append(
        h(
          "a",
          { href: a.url, target: "_blank", rel: "noopener" },
          h("img", { src: a.thumb, alt: T.image, loading: "lazy", width: a.width, height: a.height }),
        ),
      );
    }
    li.append(pics);
  }
  if (!message.deleted) {
    li.append(renderReactions(message) || "");
    li.append(
      h(
        "button",
        { type: "button", class: "more", "data-action": "menu", "aria-expanded": "false", title: T.more },
        icon(C.icons, "ellipsis"),
        h("span", { class: "sr-only", text: T.more }),
      ),
    );
  }
  return li;
}

function actionButton(action, name, label, extra = {}) {
  return h("button", { type: "button", class: "act", "data-action": action, ...extra }, icon(C.icons, name), ` ${label}`);
}

function renderActions(message) {
  const mine = message.author && message.author.id === ME;
  const bar = h("div", { class: "msg-actions" });
  const emojis = h("div", { class: "emoji-row", role: "group", "aria-label": T.react });
  for (const emoji of C.reactions) {
    emojis.append(
      h("button", { type: "button", class: "emoji", "data-action": "react", "data-emoji": emoji, text: emoji }),
    );
  }
  bar.append(emojis);
  bar.append(actionButton("reply", "reply", T.reply));
  if (mine) bar.append(actionButton("edit", "pencil", T.edit));
  if (mine || C.moderator) bar.append(actionButton("delete", "trash", T.delete, { class: "act danger" }));
  if (!mine && message.author) bar.append(actionButton("report", "flag", T.report));
  if (C.moderator && !mine && message.author) {
    bar.append(actionButton("mute", "mic-off", T.mute, { class: "act mod" }));
    bar.append(actionButton("ban", "ban", T.ban, { class: "act mod danger" }));
  }
  return bar;
}

function placeNode(id, li) {
  // Most messages are the newest: look from the end for the first smaller id.
  let next = null;
  for (let el = els.list.lastElementChild; el; el = el.previousElementSibling) {
    if (Number(el.dataset.id) < id) break;
    next = el;
  }
  els.list.insertBefore(li, next);
}

/** Insert or update a message; an older rev than the one shown is ignored. */
function upsert(message) {
  if (message.room !== ROOM) return false;
  const known = messages.get(message.id);
  if (known && known.rev >= message.rev) return false;
  messages.set(message.id, message);
  const li = renderMessage(message);
  const old = nodes.get(message.id);
  if (old) {
    const open = old.querySelector(".msg-actions");
    if (open && !message.deleted) {
      li.append(renderActions(message));
      li.classList.add("open");
    }
    old.replaceWith(li);
  } else {
    placeNode(message.id, li);
  }
  nodes.set(message.id, li);
  // Replies quoting this message show its new text.
  if (known) {
    for (const other of messages.values()) {
      if (other.reply_to === message.id && nodes.has(other.id)) {
        const fresh = renderMessage(other);
        nodes.get(other.id).replaceWith(fresh);
        nodes.set(other.id, fresh);
      }
    }
  }
  if (message.author && message.author.id === ME) {
    const pending = pendingNodes.get(message.client_id);
    if (pending) {
      pending.remove();
      pendingNodes.delete(message.client_id);
    }
  }
  if (message.author) typers.delete(message.author.id);
  return !known;
}

function receive(list) {
  const bottom = atBottom();
  let fresh = 0;
  let mineNew = false;
  for (const message of list) {
    if (upsert(message)) {
      fresh += 1;
      if (message.author?.id === ME) mineNew = true;
    }
  }
  renderTyping();
  if (!fresh) return;
  if (bottom || mineNew) {
    toBottom();
    markRead();
  } else {
    els.jump.hidden = false;
  }
}

// --- pending (not yet acknowledged) messages -----------------------------------

function renderPending(item) {
  const li = h(
    "li",
    { class: "msg mine pending", "data-client": item.client_id },
    h("div", { class: "msg-head" }, h("bdi", { class: "author", text: C.meName }), h("span", { class: "state", text: T.sending })),
    h("div", { class: "msg-text", dir: "auto" }, renderMarkdown(item.text)),
  );
  if (item.attachments?.some((id) => voiceIds.has(id))) li.append(h("div", { class: "hint", text: T.voiceMessage }));
  else if (item.attachments?.length) li.append(h("div", { class: "hint", text: `${T.image} × ${item.attachments.length}` }));
  pendingNodes.get(item.client_id)?.remove();
  pendingNodes.set(item.client_id, li);
  outboxList.append(li);
  return li;
}

function failPending(item) {
  const li = pendingNodes.get(item.client_id) || renderPending(item);
  li.classList.add("failed");
  const state = li.querySelector(".state");
  state.textContent = `${T.failed}: ${errorText(item)}`;
  li.append(
    h(
      "div",
      { class: "msg-actions" },
      h("button", { type: "button", class: "act", "data-action": "retry", text: T.retry }),
      h("button", { type: "button", class: "act danger", "data-action": "discard", text: T.cancel }),
    ),
  );
  li._item = item;
}

outboxList.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const li = button.closest("li");
  const item = li._item;
  li.remove();
  pendingNodes.delete(item.client_id);
  if (button.dataset.action === "retry") {
    hub.post(ROOM, { text: item.text, reply_to: item.reply_to, attachments: item.attachments });
  }
});

// --- composer ----------------------------------------------------------------

function setContext(text) {
  els.context.hidden = !text;
  els.contextText.textContent = text || "";
}

function cancelContext() {
  if (editing) els.text.value = "";
  replyTo = null;
  editing = null;
  setContext("");
  grow();
}

els.contextCancel.addEventListener("click", cancelContext);

function grow() {
  els.text.style.height = "auto";
  els.text.style.height = `${Math.min(els.text.scrollHeight, 180)}px`;
}

let lastTyping = 0;
els.text.addEventListener("input", () => {
  grow();
  const now = Date.now();
  if (els.text.value && now - lastTyping > 2500) {
    lastTyping = now;
    hub.hint({ type: "typing", room: ROOM });
  }
});

els.text.addEventListener("keydown", (event) => {
  // On a phone Enter makes a new line and the button sends; with a keyboard Enter sends.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && matchMedia("(pointer: fine)").matches) {
    event.preventDefault();
    els.composer.requestSubmit();
  }
  if (event.key === "Escape" && (replyTo || editing)) cancelContext();
});

els.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  if (removed) return;
  const text = els.text.value.trim();
  if (uploads.some((u) => !u.id && !u.error)) {
    toast(T.uploading);
    return;
  }
  const attachments = uploads.filter((u) => u.id).map((u) => u.id);
  if (editing) {
    if (!text) return;
    hub.request({ type: "edit", room: ROOM, id: editing, text }).catch((f) => toast(errorText(f), "error"));
    cancelContext();
    els.text.value = "";
    grow();
    return;
  }
  if (!text && !attachments.length) return;
  if (text.length > C.maxChars) {
    toast(T.err_too_long, "error");
    return;
  }
  hub.post(ROOM, { text, reply_to: replyTo?.id, attachments });
  els.text.value = "";
  uploads = [];
  els.images.replaceChildren();
  cancelContext();
  els.text.focus();
});

// --- images ----------------------------------------------------------------------

els.file.addEventListener("change", async () => {
  const files = Array.from(els.file.files || []);
  els.file.value = "";
  for (const file of files) {
    if (uploads.length >= 4) break;
    if (!file.type.startsWith("image/")) continue;
    if (file.size > C.maxUpload) {
      toast(T.tooBig, "error");
      continue;
    }
    const upload = { file, id: null, error: false };
    uploads.push(upload);
    const preview = URL.createObjectURL(file);
    const state = h("span", { class: "state", text: T.uploading });
    const remove = h("button", { type: "button", class: "act", title: T.removeImage }, icon(C.icons, "x"), h("span", { class: "sr-only", text: T.removeImage }));
    const li = h("li", {}, h("img", { src: preview, alt: T.image }), state, remove);
    remove.addEventListener("click", () => {
      uploads = uploads.filter((u) => u !== upload);
      li.remove();
      URL.revokeObjectURL(preview);
    });
    els.images.append(li);
    const form = new FormData();
    form.append("file", file);
    try {
      const response = await fetch(C.uploadUrl, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf() },
      });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      upload.id = data.id;
      state.replaceChildren(icon(C.icons, "check"));
    } catch {
      upload.error = true;
      uploads = uploads.filter((u) => u !== upload);
      state.textContent = T.uploadFailed;
      li.classList.add("failed");
    }
  }
});

// --- voice messages ---------------------------------------------------------------

function markListened(voice) {
  fetch(`/api/rooms/attachments/${voice.id}/listened`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrf() },
  }).catch(() => {});
}

async function sendVoice(blob) {
  const extension = blob.type.includes("mp4") ? "m4a" : blob.type.includes("ogg") ? "ogg" : "webm";
  const form = new FormData();
  form.append("file", blob, `voice.${extension}`);
  form.append("kind", "voice");
  const reply = replyTo?.id;
  toast(T.uploading);
  try {
    const response = await fetch(C.uploadUrl, {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf() },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      toast(data.message || T.voiceFailed, "error");
      return;
    }
    voiceIds.add(data.id);
    hub.post(ROOM, { text: "", reply_to: reply, attachments: [data.id] });
    if (replyTo?.id === reply) cancelContext();
  } catch {
    toast(T.voiceFailed, "error");
  }
}

if (els.mic && canRecord()) {
  els.mic.hidden = false;
  setupRecorder({
    button: els.mic,
    bar: $("recording"),
    elapsed: $("recording-time"),
    cancel: $("recording-cancel"),
    send: $("recording-send"),
    maxSeconds: C.voiceMaxSeconds,
    T,
    numberFormat: numberFmt,
    onRecorded: sendVoice,
    onError: (text) => toast(text, "error"),
  });
}

// --- message actions ------------------------------------------------------------

const reportDialog = $("report-dialog");
const muteDialog = $("mute-dialog");

function ask(dialog) {
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

function closeMenus(except) {
  for (const li of els.list.querySelectorAll(".msg.open")) {
    if (li === except) continue;
    li.classList.remove("open");
    li.querySelector(".msg-actions")?.remove();
    li.querySelector(".more")?.setAttribute("aria-expanded", "false");
  }
}

function act(request) {
  return hub.request({ room: ROOM, ...request }).catch((frame) => {
    toast(errorText(frame), "error");
    throw frame;
  });
}

function startReply(message) {
  editing = null;
  replyTo = { id: message.id, name: message.author?.name || T.unknownAuthor };
  setContext(fmt("replyTo", { name: replyTo.name }));
  els.text.focus();
}

// A finger sliding a message toward the line's end answers it (WhatsApp's gesture): the
// reply needs no menu, and works where a long press opens none (iOS). Vertical moves
// stay the browser's (touch-action: pan-y), so scrolling is untouched.
const SWIPE_PX = 64;
let swipe = null;

function swipeStop(reply) {
  if (!swipe) return;
  const { li, dx } = swipe;
  swipe = null;
  li.style.transform = "";
  li.classList.remove("swiping", "swipe-ready");
  const message = messages.get(Number(li.dataset.id));
  if (reply && dx >= SWIPE_PX && message && !message.deleted) startReply(message);
}

els.list.addEventListener("pointerdown", (event) => {
  if (event.pointerType !== "touch" || event.target.closest("button, a, audio, input")) return;
  const li = event.target.closest("li.msg");
  if (li && messages.has(Number(li.dataset.id))) {
    swipe = { li, x: event.clientX, y: event.clientY, pointer: event.pointerId, dx: 0 };
  }
});
els.list.addEventListener("pointermove", (event) => {
  if (!swipe || event.pointerId !== swipe.pointer) return;
  const towardEnd = document.documentElement.dir === "rtl" ? -1 : 1;
  const dx = (event.clientX - swipe.x) * towardEnd;
  if (Math.abs(event.clientY - swipe.y) > 30 && Math.abs(event.clientY - swipe.y) > dx) return swipeStop(false);
  swipe.dx = Math.max(0, Math.min(dx, SWIPE_PX * 1.4));
  swipe.li.classList.add("swiping");
  swipe.li.classList.toggle("swipe-ready", swipe.dx >= SWIPE_PX);
  swipe.li.style.transform = `translateX(${swipe.dx * towardEnd}px)`;
});
els.list.addEventListener("pointerup", () => swipeStop(true));
els.list.addEventListener("pointercancel", () => swipeStop(false));

// A long press (or a right click) on a message opens its actions, as its ⋯ button does.
els.list.addEventListener("contextmenu", (event) => {
  const li = event.target.closest("li.msg");
  if (!li || event.target.closest("a, img") || li.classList.contains("open")) return;
  const more = li.querySelector("button.more");
  if (!more) return;
  event.preventDefault();
  more.click();
});

els.list.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const li = button.closest("li.msg");
  const id = Number(li.dataset.id);
  const message = messages.get(id);
  if (!message) return;
  const action = button.dataset.action;
  if (action !== "menu") closeMenus(null);
  switch (action) {
    case "menu": {
      const open = li.classList.contains("open");
      closeMenus(li);
      if (open) {
        li.classList.remove("open");
        li.querySelector(".msg-actions")?.remove();
      } else {
        li.classList.add("open");
        li.append(renderActions(message));
      }
      button.setAttribute("aria-expanded", String(!open));
      break;
    }
    case "react": {
      const emoji = button.dataset.emoji;
      const on = !(message.reactions?.[emoji] || []).includes(ME);
      act({ type: "react", id, emoji, on }).catch(() => {});
      break;
    }
    case "reply":
      startReply(message);
      break;
    case "edit":
      replyTo = null;
      editing = id;
      setContext(T.editing);
      els.text.value = message.text;
      grow();
      els.text.focus();
      break;
    case "delete":
      if (confirm(T.deleteConfirm)) act({ type: "delete", id }).catch(() => {});
      break;
    case "report":
      $("report-reason").value = "";
      if (await ask(reportDialog)) {
        const reason = $("report-reason").value.trim();
        if (reason) act({ type: "report", id, reason }).then(() => toast(T.reportDone), () => {});
      }
      break;
    case "mute":
      if (muteDialog && (await ask(muteDialog))) {
        const minutes = Number($("mute-minutes").value);
        act({ type: "mute", user: message.author.id, minutes }).catch(() => {});
      }
      break;
    case "ban":
      if (confirm(fmt("banConfirm", { name: message.author.name }))) {
        act({ type: "ban", user: message.author.id, on: true }).catch(() => {});
      }
      break;
    case "goto": {
      const target = nodes.get(Number(button.dataset.target));
      if (target) {
        target.scrollIntoView({ block: "center" });
        target.classList.add("flash-target");
        setTimeout(() => target.classList.remove("flash-target"), 1500);
      }
      break;
    }
  }
});

// --- older messages ---------------------------------------------------------------

async function loadOlder() {
  if (loadingOlder || !hasOlder || !hub.ready) return;
  loadingOlder = true;
  const oldest = Math.min(...messages.keys());
  const before = Number.isFinite(oldest) ? oldest : undefined;
  const height = els.log.scrollHeight;
  try {
    const page = await hub.request({ type: "history", room: ROOM, before, limit: 50 });
    for (const message of page.messages) upsert(message);
    els.log.scrollTop += els.log.scrollHeight - height;
    hasOlder = page.more;
  } catch {
    // Offline: the button stays and works again once connected.
  } finally {
    loadingOlder = false;
    els.older.hidden = !hasOlder;
    els.beginning.hidden = hasOlder;
  }
}

els.older.addEventListener("click", loadOlder);
if ("IntersectionObserver" in window) {
  new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting) && els.log.scrollHeight > els.log.clientHeight) loadOlder();
    },
    { root: els.log },
  ).observe(els.older);
}

// --- read marker ------------------------------------------------------------------

let readTimer = null;
function markRead() {
  if (readTimer || document.visibilityState !== "visible") return;
  readTimer = setTimeout(() => {
    readTimer = null;
    const top = Math.max(0, ...messages.keys());
    if (top > readId && atBottom() && hub.hint({ type: "read", room: ROOM, id: top })) readId = top;
  }, 800);
}
document.addEventListener("visibilitychange", markRead);

// --- typing and presence ------------------------------------------------------

function renderTyping() {
  const now = Date.now();
  for (const [id, t] of typers) if (t.until < now) typers.delete(id);
  const names = [...typers.values()].map((t) => t.name);
  els.typing.textContent =
    names.length === 0 ? "" : names.length === 1 ? fmt("typingOne", { name: names[0] }) : T.typingMany;
}
setInterval(renderTyping, 1500);

function renderOnline() {
  els.online.replaceChildren(
    ...online.entries().map(([id, name]) => {
      const li = h("li", {}, h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "person" }, h("bdi", { text: name })));
      if (id !== ME) {
        li.append(
          h(
            "form",
            { method: "post", action: C.directUrl, class: "inline" },
            h("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf() }),
            h("input", { type: "hidden", name: "user", value: String(id) }),
            h("button", { type: "submit", class: "btn btn-quiet btn-small" }, icon(C.icons, "mail"), ` ${T.message}`),
          ),
        );
      }
      return li;
    }),
  );
  // A large room lists a page of who is online; the rest come on demand.
  els.onlineMoreRow.hidden = !online.hasMore;
  els.onlineMore.disabled = online.busy;
  els.onlineListed.textContent = fmt("onlineListed", { shown: online.people.size, count: online.count });
  const label = fmt("onlineCount", { count: Math.max(online.count, online.people.size) });
  els.onlineTitle.textContent = label;
  els.onlineCount.textContent = label;
}

function setMuted(untilIso) {
  const until = untilIso ? new Date(untilIso) : null;
  const muted = until && until > new Date();
  els.text.disabled = !!muted || removed;
  els.send.disabled = !!muted || removed;
  els.mutedNotice.hidden = !muted;
  if (muted) els.mutedNotice.textContent = fmt("mutedUntil", { time: when(untilIso).short });
}

// --- the socket --------------------------------------------------------------------

const hub = new Hub({ loginUrl: C.loginUrl || "/login/" });
window.hirfaHub = hub; // for the browser tests and for debugging

const online = new OnlineList({ room: ROOM, request: (frame) => hub.request(frame), changed: renderOnline });
els.onlineMore.addEventListener("click", () => online.more().catch(() => {}));
// The list is read again only while it is in view (the people sheet open on a phone).
if ("IntersectionObserver" in window) {
  new IntersectionObserver((seen) => online.show(seen.some((entry) => entry.isIntersecting))).observe(els.online);
}
watchMeeting(hub, ROOM);

hub.on("status", ({ state, retryIn }) => {
  const text = {
    connecting: T.connecting,
    offline: fmt("offline", { seconds: Math.ceil((retryIn || 0) / 1000) }),
    too_many: fmt("tooManySockets", { seconds: Math.ceil((retryIn || 0) / 1000) }),
    busy: fmt("busy", { seconds: Math.ceil((retryIn || 0) / 1000) }),
    reload: T.reload,
  }[state];
  els.status.hidden = !text;
  els.status.textContent = text || "";
  els.status.dataset.state = state;
  document.body.dataset.connection = state;
});
hub.on("message", (message) => receive([message]));
hub.on("subscribed", (frame) => {
  if (frame.room !== ROOM) return;
  online.subscribed(frame);
  markRead();
});
hub.on("presence_delta", (frame) => frame.room === ROOM && online.delta(frame));
hub.on("presence_list", (frame) => frame.room === ROOM && online.list(frame));
hub.on("typing", (frame) => {
  if (frame.room !== ROOM || frame.user.id === ME) return;
  typers.set(frame.user.id, { name: frame.user.name, until: Date.now() + 4000 });
  renderTyping();
});
hub.on("member", (frame) => {
  if (frame.room !== ROOM) return;
  if (frame.user.id === ME) {
    setMuted(frame.muted_until);
  } else if (C.moderator) {
    toast(fmt(frame.banned ? "memberBanned" : "memberMuted", { name: frame.user.name }));
  }
});
hub.on("removed", (frame) => {
  if (frame.room !== ROOM) return;
  removed = true;
  setMuted(null);
  els.status.hidden = false;
  els.status.textContent = T.removed;
  els.status.dataset.state = "removed";
});
hub.on("notification", (frame) => {
  bumpUnread();
  if (frame.kind === "mention" && frame.data.room !== ROOM) {
    toast(fmt("mentionedYou", { name: frame.data.by, room: frame.data.room_title }));
  }
});
hub.on("outbox", (item) => item.room === ROOM && renderPending(item) && toBottom());
hub.on("failed", (item) => item.room === ROOM && failPending(item));
hub.on("error", (frame) => toast(errorText(frame), "error"));

// --- start ---------------------------------------------------------------------------

for (const message of C.messages) upsert(message);
for (const item of hub.pending(ROOM)) renderPending(item);
toBottom();
if (C.mutedUntil) setMuted(C.mutedUntil);
hub.watch(ROOM, { rev: C.rev, resume: true });
hub.start();
