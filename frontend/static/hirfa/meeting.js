// The meeting page: choose devices (or audio only), join, then the call.
// Signaling rides the page's one socket (socket.js); media goes over one
// RTCPeerConnection to the SFU (meeting-peer.js). See docs/protocol.md, "Meetings".
//
// Guarantees:
// - after a network blip or change the call comes back without leaving the meeting:
//   a stalled call pings the socket (dead with the old network if nothing answers within
//   SOCKET_CHECK_MS: it starts over at once), ICE trouble sends meeting_ice_restart; a socket that reconnected
//   sends meeting_join with resume (the server restarts ICE on the peer it kept, and this
//   page keeps its RTCPeerConnection), and meeting_rejoin a plain meeting_join, with the
//   same sources and options;
// - audio only sends and receives no video; "don't receive video" subscribes
//   to none; the camera is capped by the chosen quality;
// - while the meeting records, everyone sees it (the indicator), and whoever joins is
//   asked first: join and be recorded, or join without being recorded (then the join
//   frame says recorded: false and nothing of his is written); he can change his mind
//   in the panel (meeting_recorded);
// - nothing is written as HTML: every node is built with the DOM API.

import { $, LOCALE, h, icon, pageData, translator } from "./dom.js";
import { Hub } from "./socket.js";
import { QUALITY, SfuPeer, videoConstraints } from "./meeting-peer.js";

const T = pageData("i18n");
const C = pageData("config");
const ROOM = C.room;
const ME = C.me;
const LANG = LOCALE;

const els = {
  root: $("meeting"),
  status: $("status"),
  liveTag: $("live-tag"),
  meter: $("meter"),
  meterText: $("meter-text"),
  prejoin: $("prejoin"),
  preview: $("preview"),
  previewOff: $("preview-off"),
  cameraSelect: $("camera-select"),
  camera2Field: $("camera2-field"),
  camera2Select: $("camera2-select"),
  micSelect: $("mic-select"),
  audioOnly: $("audio-only"),
  noVideo: $("no-video"),
  quality: $("quality"),
  settings: $("settings"),
  settingsSlot: $("settings-slot"),
  note: $("prejoin-note"),
  join: $("join"),
  joinLabel: $("join-label"),
  waiting: $("waiting"),
  ended: $("ended"),
  endedText: $("ended-text"),
  stage: $("stage"),
  tiles: $("tiles"),
  sounds: $("sounds"),
  panel: $("panel"),
  people: $("people"),
  peopleCount: $("people-count"),
  hostControls: $("host-controls"),
  lock: $("lock"),
  lobby: $("lobby"),
  waitingList: $("waiting-list"),
  mic: $("ctl-mic"),
  camera: $("ctl-camera"),
  camera2: $("ctl-camera2"),
  screen: $("ctl-screen"),
  hand: $("ctl-hand"),
  peopleButton: $("ctl-people"),
  recIndicator: $("rec-indicator"),
  consent: $("consent"),
  consentYes: $("consent-yes"),
  consentNo: $("consent-no"),
  recordMe: $("record-me"),
  recordMeRow: $("record-me-row"),
  recordToggle: $("record-toggle"),
  markerForm: $("marker-form"),
  markerLabel: $("marker-label"),
  tablesForm: $("tables-form"),
  tablesHost: $("tables-host"),
  tablesList: $("tables-list"),
  tablesBar: $("tables-bar"),
  tablesWhere: $("tables-where"),
  tablesTimer: $("tables-timer"),
  tablesChat: $("tables-chat"),
  tablesBack: $("tables-back"),
};

const fmt = translator(T);


const toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
document.body.append(toasts);

function toast(text, kind = "info") {
  const item = h("div", { class: `toast toast-${kind}`, text });
  toasts.append(item);
  setTimeout(() => item.remove(), 6000);
}

function errorText(frame) {
  if (frame.code === "not_found") return T.err_meeting_not_found;
  return T[`err_${frame.code}`] || frame.message || T.err_other;
}

// --- state -------------------------------------------------------------------------

/** prejoin | joining | lobby | in | ended */
let phase = "prejoin";
let live = C.live; // the room's live meeting id, or null
let meetingId = null;
let isHost = false;
let iceServers = [];
let peer = null;
let state = null; // the last meeting_state
let reception = null; // the last meeting_reception: what my own connection carries
let hand = false;
let socketLost = false;
const SOCKET_CHECK_MS = 1000;
let hostMutedMic = false;
// A masterclass's listener publishes nothing until a presenter or host lets him speak.
let maySpeak = null; // null: not told yet (a first state that says false is no change to announce)
let presenterPinned = false; // a listener's page gave the first presenter's video the first claim
let recording = !!C.recording; // the meeting records (from the room's meeting frame, then meeting_state)
let recorded = true; // this member agreed to be recorded
let tables = null; // the last open meeting_tables: the meeting is split into tables
let moving = false; // leaving one meeting for another (a table, or back) on the same socket
// camera2: a masterclass presenter's (or host's) second camera, for his hands.
const local = { mic: null, camera: null, screen: null, camera2: null };
const selfMuted = { mic: false, camera: false };
const usageBase = { sent: 0, received: 0 };

const opts = () => ({
  audioOnly: els.audioOnly.checked,
  receiveVideo: !els.noVideo.checked && !els.audioOnly.checked,
  quality: QUALITY[els.quality.value] ? els.quality.value : "standard",
});

function setPhase(next) {
  phase = next;
  els.root.dataset.phase = next;
  document.body.dataset.phase = next;
  els.prejoin.hidden = !(next === "prejoin" || next === "joining");
  els.waiting.hidden = next !== "lobby";
  els.ended.hidden = next !== "ended";
  els.stage.hidden = next !== "in";
  els.meter.hidden = next !== "in";
  els.join.disabled = next === "joining" || (!live && !C.mayStart);
  // One set of device and data-saver inputs: in the form before joining, in the side panel during the call.
  if (next === "in" && els.settings.parentElement !== els.settingsSlot) els.settingsSlot.append(els.settings);
  if (next === "prejoin" && els.settings.parentElement === els.settingsSlot) els.note.before(els.settings);
  updateJoinButton();
}

function updateJoinButton() {
  els.liveTag.hidden = !live;
  if (phase === "joining") {
    els.joinLabel.textContent = T.joining;
    return;
  }
  els.joinLabel.textContent = live || !C.mayStart ? T.join : T.startJoin;
  els.join.disabled = !live && !C.mayStart;
  els.note.textContent = !live && !C.mayStart ? T.noMeeting : "";
}

// --- devices and preview ----------------------------------------------------------

function stopTrack(source) {
  if (local[source]) local[source].stop();
  local[source] = null;
}

async function openMic() {
  const id = els.micSelect.value;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: id ? { deviceId: { exact: id } } : true });
    return stream.getAudioTracks()[0] || null;
  } catch {
    return null;
  }
}

async function openCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: videoConstraints(opts().quality, els.cameraSelect.value),
    });
    return stream.getVideoTracks()[0] || null;
  } catch {
    return null;
  }
}

/**
 * The second camera (a presenter's hands): the device chosen in its list, which is by
 * default another than the first camera's; on a phone with one listed camera, the
 * other facing one.
 */
async function openCamera2() {
  const first = local.camera?.getSettings() || {};
  const video = videoConstraints(opts().quality, els.camera2Select.value || null);
  if (!els.camera2Select.value && first.facingMode) video.facingMode = first.facingMode === "user" ? "environment" : "user";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video });
    return stream.getVideoTracks()[0] || null;
  } catch {
    return null;
  }
}

/** Whether this member may show a second camera: a masterclass's presenter or host. */
function mayShowHands() {
  const mine = state?.participants.find((p) => p.user.id === ME);
  return !!state?.masterclass && (isHost || !!mine?.presenter);
}

function showPreview() {
  const camera = local.camera && !opts().audioOnly ? local.camera : null;
  els.preview.srcObject = camera ? new MediaStream([camera]) : null;
  els.preview.hidden = !camera;
  els.previewOff.hidden = !!camera;
}

async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, key, current) => {
    const found = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren(
      ...found.map((d, i) => h("option", { value: d.deviceId, text: d.label || fmt(key, { n: i + 1 }) })),
    );
    if (current && found.some((d) => d.deviceId === current)) select.value = current;
    select.disabled = !found.length;
  };
  fill(els.cameraSelect, "videoinput", "cameraN", local.camera?.getSettings().deviceId);
  // The second camera: by default another device than the first.
  const firstId = local.camera?.getSettings().deviceId || els.cameraSelect.value;
  const other = devices.find((d) => d.kind === "videoinput" && d.deviceId && d.deviceId !== firstId);
  fill(els.camera2Select, "videoinput", "cameraN", local.camera2?.getSettings().deviceId || other?.deviceId);
  fill(els.micSelect, "audioinput", "micN", local.mic?.getSettings().deviceId);
}

/** The preview's devices being opened when the page starts (a Join waits for them). */
let devicesOpening = Promise.resolve();

/** Open the chosen devices for the preview (before joining). */
async function preparePreview() {
  if (!navigator.mediaDevices?.getUserMedia) {
    els.note.textContent = T.noDevices;
    return;
  }
  stopTrack("mic");
  stopTrack("camera");
  local.mic = await openMic();
  if (!opts().audioOnly) local.camera = await openCamera();
  // Audio only may have been chosen while the camera was opening.
  if (opts().audioOnly) stopTrack("camera");
  showPreview();
  await listDevices();
  if (!local.mic && !local.camera) els.note.textContent = T.noDevices;
  else if (!local.camera && !opts().audioOnly) els.note.textContent = T.noCamera;
  else updateJoinButton();
}

els.cameraSelect.addEventListener("change", async () => {
  if (opts().audioOnly) return;
  stopTrack("camera");
  local.camera = await openCamera();
  if (selfMuted.camera && local.camera) local.camera.enabled = false;
  showPreview();
  if (peer) await peer.replace("camera", local.camera);
  renderTiles();
});

els.camera2Select.addEventListener("change", async () => {
  if (!local.camera2) return;
  stopTrack("camera2");
  local.camera2 = await openCamera2();
  if (peer) await peer.replace("camera2", local.camera2);
  if (!local.camera2) {
    meetingHint({ type: "meeting_unpublish", source: "camera2" });
    toast(T.noCamera2, "error");
  }
  renderControls();
  renderTiles();
});

els.micSelect.addEventListener("change", async () => {
  stopTrack("mic");
  local.mic = await openMic();
  if (local.mic) local.mic.enabled = !selfMuted.mic && !hostMutedMic;
  if (peer) await peer.replace("mic", local.mic);
});

els.quality.addEventListener("change", async () => {
  const q = QUALITY[opts().quality];
  if (local.camera) {
    try {
      await local.camera.applyConstraints(videoConstraints(opts().quality, null));
    } catch {
      // Some cameras refuse: the sender's bitrate cap still applies.
    }
  }
  if (peer && q) await peer.applyCaps();
});

els.audioOnly.addEventListener("change", async () => {
  const audioOnly = opts().audioOnly;
  els.noVideo.disabled = audioOnly;
  els.cameraSelect.disabled = audioOnly;
  if (audioOnly) {
    if (phase === "in" && local.camera) meetingHint({ type: "meeting_unpublish", source: "camera" });
    stopTrack("camera");
    if (phase === "in" && local.screen) stopScreen();
    if (phase === "in" && local.camera2) stopHands();
  } else if (phase !== "in") {
    local.camera = await openCamera();
  }
  showPreview();
  if (phase === "in") meetingHint({ type: "meeting_receive", video: opts().receiveVideo });
  renderControls();
  renderTiles();
});

els.noVideo.addEventListener("change", () => {
  if (phase === "in") meetingHint({ type: "meeting_receive", video: opts().receiveVideo });
});

// --- joining ----------------------------------------------------------------------

function meetingHint(frame) {
  if (!meetingId) return false;
  return hub.hint({ ...frame, meeting: meetingId });
}

function joinFrame() {
  const o = opts();
  const publish = [];
  if (local.mic) publish.push("mic");
  if (local.camera && !o.audioOnly) publish.push("camera");
  if (local.screen && !o.audioOnly) publish.push("screen");
  if (local.camera2 && !o.audioOnly) publish.push("camera2");
  const frame = {
    type: "meeting_join",
    publish,
    audio_only: o.audioOnly,
    receive_video: o.receiveVideo,
    recorded,
  };
  // A phone's screen shows four videos well: the server switches the others out (slots).
  if (matchMedia("(max-width: 600px)").matches) frame.video_slots = 4;
  if (meetingId) frame.meeting = meetingId;
  else frame.room = ROOM;
  return frame;
}

async function sendJoin(resume = false) {
  const reply = await hub.request({ ...joinFrame(), resume });
  // Not resumed: the server made a new peer, whose first offer needs a new connection.
  if (!reply.resumed) closePeer();
  if (reply.type === "meeting_lobby") {
    meetingId = reply.meeting;
    setPhase("lobby");
  } else if (reply.type === "meeting_joined") {
    joined(reply);
  }
}

/** The meeting records: tell him before any media flows, and let him choose. */
function askConsent() {
  return new Promise((resolve) => {
    els.consent.hidden = false;
    els.join.hidden = true;
    const done = (answer) => {
      els.consent.hidden = true;
      els.join.hidden = false;
      resolve(answer);
    };
    els.consentYes.onclick = () => done(true);
    els.consentNo.onclick = () => done(false);
    els.consentYes.focus();
  });
}

async function join() {
  if (phase === "joining") return;
  if (recording && live) {
    recorded = await askConsent();
    els.recordMe.checked = recorded;
  }
  setPhase("joining");
  try {
    // Join is enabled before the preview's devices are open: joined now, the page would publish
    // only what was open (the microphone), and the camera, opened a moment later, never.
    await devicesOpening;
    if (!local.mic && !local.camera) await preparePreview();
    if (!live && C.mayStart) {
      const frame = await hub.request({ type: "meeting_start", room: ROOM });
      live = frame.meeting;
    }
    meetingId = null;
    await sendJoin();
  } catch (frame) {
    setPhase("prejoin");
    toast(errorText(frame), "error");
  }
}

function joined(frame) {
  if (frame.resumed && frame.meeting === meetingId && peer) {
    // Our own peer, kept by the server: its ICE restart offer follows. Nothing else changed.
    setPhase("in");
    socketLost = false;
    setStatus("");
    return;
  }
  reception = null; // a new server-side peer: its allocator speaks again
  if (frame.meeting !== meetingId) {
    // Another meeting (a workshop table, or back): its first state says whether he may speak,
    // and what is open went out with the join if he may.
    maySpeak = null;
    presenterPinned = false;
  }
  meetingId = frame.meeting;
  live = frame.meeting;
  isHost = !!frame.host && !!els.hostControls;
  if (els.hostControls) els.hostControls.hidden = !isHost;
  setPhase("in");
  socketLost = false;
  setStatus("");
  // A new server-side session starts unmuted with the hand down: say how we are.
  if (selfMuted.mic) meetingHint({ type: "meeting_mute", source: "mic", muted: true });
  if (selfMuted.camera) meetingHint({ type: "meeting_mute", source: "camera", muted: true });
  if (hand) meetingHint({ type: "meeting_hand", up: true });
  renderAll();
}

function closePeer() {
  if (!peer) return;
  usageBase.sent += peer.totals.sent;
  usageBase.received += peer.totals.received;
  peer.close();
  peer = null;
}

let generation = 0; // peer connections opened so far (the tests watch it)

function newPeer() {
  generation += 1;
  return new SfuPeer({
    iceServers,
    send: (frame) => meetingHint(frame),
    tracks: () => ({
      mic: local.mic,
      camera: opts().audioOnly ? null : local.camera,
      screen: local.screen,
      camera2: opts().audioOnly ? null : local.camera2,
    }),
    quality: () => opts().quality,
    onChange: () => renderAll(),
    onTrouble: () => iceRestart(),
    // The socket went over the same network: if it changed, the socket is dead too, and
    // nothing else would notice for 35 s (the restart below needs it).
    onStall: () => hub.check(SOCKET_CHECK_MS),
  });
}

/** ICE restart on our peer, kept by the server (docs/protocol.md, "ICE restart"); or, when
 * the server no longer has it, a new peer connection without leaving. */
async function iceRestart() {
  if (phase !== "in" || !hub.ready) return; // a socket that comes back rejoins by itself
  setStatus(T.reconnectingCall);
  try {
    const reply = await hub.request({ type: "meeting_ice_restart", meeting: meetingId });
    // Closed only now, before the new session's offer: the server has already given our
    // place to a new peer, so the old one's close is not taken for a failure (which
    // would make everyone else renegotiate).
    if (!reply.resumed) closePeer();
    if (reply.type === "meeting_joined") joined(reply);
  } catch (frame) {
    // The socket died (with the network): its return rejoins, resuming this peer if it can.
    if (frame.code === "disconnected") return;
    closePeer();
    rejoin();
  }
}

/** The server lost our media session, or our socket came back: meeting_join again. */
async function rejoin() {
  if (!["in", "lobby", "joining"].includes(phase)) return;
  setStatus(T.reconnectingCall);
  // Back on a new socket after our media stalled too (the network changed under both): the
  // server may still hold our peer, and then restarts its ICE rather than make a new one
  // (sendJoin closes ours if not). A socket lost alone (a hub restarting) rejoins as before.
  const resume = phase === "in" && !!peer && peer.stalled;
  if (!resume) closePeer();
  try {
    await sendJoin(resume);
  } catch (frame) {
    if (frame.code === "disconnected") return;
    ended(null, errorText(frame));
  }
}

function stopAll() {
  closePeer();
  stopTrack("screen");
  stopTrack("camera2");
  for (const audio of els.sounds.children) audio.srcObject = null;
  els.sounds.replaceChildren();
  els.tiles.replaceChildren();
  tiles.clear();
}

function ended(reason, text = null) {
  stopAll();
  for (const item of toasts.querySelectorAll(".toast-info")) item.remove();
  meetingId = null;
  state = null;
  hand = false;
  maySpeak = null;
  presenterPinned = false;
  setStatus("");
  els.endedText.textContent = text || T[`ended_${reason}`] || T.ended_ended;
  setPhase("ended");
}

async function leave() {
  const id = meetingId;
  if (id && hub.ready) {
    try {
      await hub.request({ type: "meeting_leave", meeting: id });
    } catch {
      // Already out (or offline, which leaves too): end here all the same.
    }
  }
  ended("left");
  stopTrack("mic");
  stopTrack("camera");
}

els.join.addEventListener("click", join);
$("waiting-leave").addEventListener("click", leave);
$("ctl-leave").addEventListener("click", leave);
$("rejoin").addEventListener("click", async () => {
  setPhase("prejoin");
  await preparePreview();
  join();
});

// --- controls -----------------------------------------------------------------------

function setPressed(button, on, label, name) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
  button.title = label;
  button.setAttribute("aria-label", label);
  button.querySelector(".ctl-icon").replaceChildren(icon(C.icons, name));
}

function renderControls() {
  const micOff = !local.mic || selfMuted.mic || hostMutedMic || maySpeak === false;
  setPressed(els.mic, micOff, micOff ? T.unmuteMic : T.muteMic, micOff ? "mic-off" : "mic");
  els.mic.classList.toggle("off", micOff);
  const camOff = !local.camera || selfMuted.camera || opts().audioOnly || maySpeak === false;
  setPressed(els.camera, camOff, camOff ? T.cameraOn : T.cameraOff, camOff ? "camera-off" : "camera");
  els.camera.classList.toggle("off", camOff);
  setPressed(els.screen, !!local.screen, local.screen ? T.stopShare : T.shareScreen, "monitor");
  els.camera2.hidden = !mayShowHands();
  els.camera2Field.hidden = !mayShowHands();
  setPressed(els.camera2, !!local.camera2, local.camera2 ? T.hideHands : T.showHands, "video");
  els.screen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  setPressed(els.hand, hand, hand ? T.lowerHand : T.raiseHand, "hand");
}

/** A listener's tap on a source: a toast says how to ask (true), or nothing to stop (false). */
function mustAsk() {
  if (maySpeak === false) toast(T.askToSpeak);
  return maySpeak === false;
}

els.mic.addEventListener("click", async () => {
  if (mustAsk()) return;
  if (hostMutedMic) {
    toast(T.hostMutedYou);
    return;
  }
  if (!local.mic) {
    local.mic = await openMic();
    if (!local.mic) {
      toast(T.noMic, "error");
      return;
    }
    selfMuted.mic = false;
    meetingHint({ type: "meeting_publish", source: "mic" });
  } else {
    selfMuted.mic = !selfMuted.mic;
    local.mic.enabled = !selfMuted.mic;
    meetingHint({ type: "meeting_mute", source: "mic", muted: selfMuted.mic });
  }
  renderControls();
  renderTiles();
});

els.camera.addEventListener("click", async () => {
  if (mustAsk()) return;
  if (opts().audioOnly) {
    toast(T.audioOnlyOn);
    return;
  }
  if (!local.camera) {
    local.camera = await openCamera();
    if (!local.camera) {
      toast(T.noCamera, "error");
      return;
    }
    selfMuted.camera = false;
    meetingHint({ type: "meeting_publish", source: "camera" });
  } else {
    selfMuted.camera = !selfMuted.camera;
    local.camera.enabled = !selfMuted.camera;
    meetingHint({ type: "meeting_mute", source: "camera", muted: selfMuted.camera });
    if (peer) await peer.applyCaps();
  }
  renderControls();
  renderTiles();
});

function stopScreen() {
  if (!local.screen) return;
  stopTrack("screen");
  meetingHint({ type: "meeting_unpublish", source: "screen" });
  renderControls();
  renderTiles();
}

els.screen.addEventListener("click", async () => {
  if (local.screen) {
    stopScreen();
    return;
  }
  if (mustAsk()) return;
  if (opts().audioOnly) {
    toast(T.audioOnlyOn);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 10 } }, audio: false });
    local.screen = stream.getVideoTracks()[0];
    local.screen.contentHint = "detail";
    local.screen.addEventListener("ended", stopScreen);
    meetingHint({ type: "meeting_publish", source: "screen" });
  } catch {
    toast(T.screenFailed, "error");
  }
  renderControls();
  renderTiles();
});

function stopHands() {
  if (!local.camera2) return;
  stopTrack("camera2");
  meetingHint({ type: "meeting_unpublish", source: "camera2" });
  renderControls();
  renderTiles();
}

els.camera2.addEventListener("click", async () => {
  if (local.camera2) {
    stopHands();
    return;
  }
  if (opts().audioOnly) {
    toast(T.audioOnlyOn);
    return;
  }
  await listDevices();
  local.camera2 = await openCamera2();
  if (!local.camera2) {
    toast(T.noCamera2, "error");
    return;
  }
  meetingHint({ type: "meeting_publish", source: "camera2" });
  renderControls();
  renderTiles();
});

els.hand.addEventListener("click", () => {
  hand = !hand;
  meetingHint({ type: "meeting_hand", up: hand });
  renderControls();
});

function togglePanel(open = els.panel.hidden) {
  els.panel.hidden = !open;
  els.peopleButton.setAttribute("aria-expanded", String(open));
  els.stage.classList.toggle("with-panel", open);
  layout();
}

els.peopleButton.addEventListener("click", () => togglePanel());
$("panel-close").addEventListener("click", () => togglePanel(false));

function hostAct(action, user = null) {
  const frame = { type: "meeting_host", action };
  if (user) frame.user = user;
  meetingHint(frame);
}

els.recordToggle?.addEventListener("click", () => {
  meetingHint({ type: "meeting_record", action: recording ? "stop" : "start" });
});
els.markerForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const label = els.markerLabel.value.trim();
  if (!label || !meetingId) return;
  try {
    const reply = await hub.request({ type: "meeting_marker", meeting: meetingId, label });
    els.markerLabel.value = "";
    toast(fmt("marked", { label: reply.label }));
  } catch (frame) {
    toast(errorText(frame), "error");
  }
});
els.recordMe.addEventListener("change", () => {
  recorded = els.recordMe.checked;
  meetingHint({ type: "meeting_recorded", recorded });
});
els.lock?.addEventListener("change", () => hostAct(els.lock.checked ? "lock" : "unlock"));
els.lobby?.addEventListener("change", () => hostAct(els.lobby.checked ? "lobby_on" : "lobby_off"));
$("end-all")?.addEventListener("click", () => {
  if (confirm(T.endConfirm)) hostAct("end");
});

// --- tiles --------------------------------------------------------------------------

const tiles = new Map(); // "user:source" → {el, video, name, badges, avatar}

function initials(name) {
  return (name || "?").trim().split(/\s+/).slice(0, 2).map((w) => Array.from(w)[0]).join("").toUpperCase();
}

function makeTile(key, name) {
  const video = h("video", { autoplay: true, playsInline: true, muted: true });
  const avatar = h("div", { class: "avatar-big", "aria-hidden": "true", text: initials(name) });
  const label = h("bdi", { class: "tile-name" });
  const badges = h("span", { class: "badges" });
  const paused = h("p", { class: "tile-paused", role: "status", hidden: true, text: T.pausedForConnection });
  const pin = h("button", { type: "button", class: "tile-pin", hidden: true });
  pin.addEventListener("click", () => {
    const user = Number(el.dataset.user);
    meetingHint({ type: "meeting_pin", user: reception?.pinned === user ? null : user });
  });
  const el = h("figure", { class: "tile", "data-key": key }, video, avatar, paused, pin, h("figcaption", {}, label, badges));
  const tile = { el, video, avatar, label, badges, paused, pin, trackId: null };
  tiles.set(key, tile);
  return tile;
}

function setVideo(tile, track) {
  const id = track ? track.id : null;
  if (tile.trackId !== id) {
    tile.trackId = id;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
  }
  tile.video.hidden = !track;
  tile.avatar.hidden = !!track;
}

function badge(name, label, cls = "") {
  return h("span", { class: `badge-icon ${cls}`, title: label }, icon(C.icons, name), h("span", { class: "sr-only", text: label }));
}

// Who has been connected in this call: only they can be "reconnecting" (not someone joining).
const everConnected = new Set();

/** Whether a participant's media stopped reaching the server (his network is changing). */
function reconnecting(p) {
  if (p.connected) everConnected.add(p.user.id);
  return !p.connected && p.user.id !== ME && everConnected.has(p.user.id);
}

function participantBadges(p) {
  const out = [];
  if (reconnecting(p)) {
    // Words, not only an icon: the frozen picture must not pass for a live one.
    out.push(h("span", { class: "badge-icon reconnecting", role: "status" }, h("span", { "aria-hidden": "true", text: "⟳ " }), h("span", { text: T.reconnecting })));
  }
  if (p.host) out.push(badge("shield", T.host));
  if (p.presenter) out.push(h("span", { class: "badge presenter", text: T.presenter }));
  if (state?.recording && p.recorded === false) out.push(badge("ban", T.notRecorded, "not-recorded"));
  if (p.hand) out.push(badge("hand", T.handUp, "hand"));
  if (p.host_muted.includes("mic")) out.push(badge("mic-off", T.hostMuted, "muted"));
  else if (!p.tracks.includes("mic") || p.muted.includes("mic")) out.push(badge("mic-off", T.micOff, "muted"));
  return out;
}

/** What the server says my connection carries of `user`'s `source` ("low"…"high", "paused"), if known. */
function receivedQuality(user, source) {
  return reception?.videos.find((v) => v.user === user && v.source === source)?.quality || null;
}

const QUALITY_BARS = { low: "▂", medium: "▂▄", high: "▂▄▆" };

function qualityBadge(quality) {
  const label = fmt("videoQuality", { quality: T[`quality_${quality}`] || quality });
  return h("span", { class: `badge-icon quality quality-${quality}`, title: label },
    h("span", { "aria-hidden": "true", text: QUALITY_BARS[quality] || "" }), h("span", { class: "sr-only", text: label }));
}

function renderReception() {
  const banner = $("reception");
  const audioOnly = phase === "in" && !!reception?.audio_only;
  banner.hidden = !audioOnly;
  const estimate = $("reception-estimate");
  estimate.hidden = !(phase === "in" && reception);
  if (reception) estimate.textContent = fmt("connectionEstimate", { kbps: kbps.format(reception.estimate_kbps) });
}

function renderTiles() {
  renderReception();
  if (phase !== "in") return;
  // A masterclass's presenters come first (stable sort: the others keep the server's order).
  const participants = [...(state?.participants || [{ user: { id: ME, name: C.meName }, host: isHost, hand, tracks: [], muted: [], host_muted: [], connected: true }])]
    .sort((a, b) => Number(!!b.presenter) - Number(!!a.presenter));
  const remote = new Map();
  for (const r of peer ? peer.remote() : []) if (r.kind === "video") remote.set(`${r.user}:${r.source}`, r.track);
  const wanted = [];
  for (const p of participants) {
    const me = p.user.id === ME;
    wanted.push({ key: `${p.user.id}:camera`, p, me, source: "camera" });
    for (const source of ["camera2", "screen"]) {
      if (me ? !!local[source] : p.tracks.includes(source) && remote.has(`${p.user.id}:${source}`)) {
        wanted.push({ key: `${p.user.id}:${source}`, p, me, source });
      }
    }
  }
  const keys = new Set(wanted.map((w) => w.key));
  for (const [key, tile] of tiles) {
    if (!keys.has(key)) {
      tile.video.srcObject = null;
      tile.el.remove();
      tiles.delete(key);
    }
  }
  wanted.forEach((w, index) => {
    const tile = tiles.get(w.key) || makeTile(w.key, w.p.user.name);
    const name = w.me ? fmt("you", { name: w.p.user.name }) : w.p.user.name;
    const labels = { screen: "screenOf", camera2: "handsOf" };
    tile.label.textContent = labels[w.source] ? fmt(labels[w.source], { name }) : name;
    let track = null;
    if (w.source === "screen") track = w.me ? local.screen : remote.get(w.key) || null;
    else if (w.source === "camera2") {
      const off = w.p.muted.includes("camera2") || w.p.host_muted.includes("camera2");
      track = w.me ? local.camera2 : off ? null : remote.get(w.key) || null;
    }
    else if (w.me) track = local.camera && !selfMuted.camera && !opts().audioOnly && maySpeak !== false ? local.camera : null;
    else if (!w.p.muted.includes("camera") && !w.p.host_muted.includes("camera")) track = remote.get(w.key) || null;
    const quality = w.me ? null : receivedQuality(w.p.user.id, w.source);
    const paused = !!track && quality === "paused";
    setVideo(tile, paused ? null : track);
    tile.paused.hidden = !paused;
    tile.el.classList.toggle("paused", paused);
    tile.el.classList.toggle("pinned", !w.me && reception?.pinned === w.p.user.id);
    tile.pin.hidden = w.me || w.source !== "camera" || !track;
    const pinned = reception?.pinned === w.p.user.id;
    tile.pin.replaceChildren(icon(C.icons, pinned ? "pin-off" : "pin"));
    tile.pin.setAttribute("aria-pressed", pinned ? "true" : "false");
    tile.pin.setAttribute("aria-label", fmt(pinned ? "unpin" : "pin", { name: w.p.user.name }));
    tile.pin.title = tile.pin.getAttribute("aria-label");
    tile.el.classList.toggle("screen", w.source === "screen");
    tile.el.classList.toggle("hands", w.source === "camera2");
    tile.el.classList.toggle("self", w.me && w.source === "camera");
    tile.el.classList.toggle("speaking", w.source === "camera" && state?.active_speaker === w.p.user.id);
    tile.el.classList.toggle("hand", w.source === "camera" && w.p.hand);
    tile.el.classList.toggle("reconnecting", reconnecting(w.p));
    const badges = w.source === "camera" ? participantBadges(w.p) : [];
    if (track && quality && quality !== "paused") badges.push(qualityBadge(quality));
    tile.badges.replaceChildren(...badges);
    tile.el.dataset.user = String(w.p.user.id);
    if (els.tiles.children[index] !== tile.el) els.tiles.insertBefore(tile.el, els.tiles.children[index] || null);
  });
  layout();
}

/**
 * Size the tiles: the column count that gives the largest 16:9 tiles in the
 * stage, and that size (the grid centres them).
 */
function layout() {
  const count = Math.max(1, els.tiles.childElementCount);
  const style = getComputedStyle(els.tiles);
  const gap = parseFloat(style.columnGap) || 0;
  const width = els.tiles.clientWidth - (parseFloat(style.paddingInlineStart) || 0) - (parseFloat(style.paddingInlineEnd) || 0);
  const height = els.tiles.clientHeight - (parseFloat(style.paddingBlockStart) || 0) - (parseFloat(style.paddingBlockEnd) || 0);
  if (width <= 0 || height <= 0) return;
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= count; cols += 1) {
    const rows = Math.ceil(count / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, (((height - gap * (rows - 1)) / rows) * 16) / 9);
    if (w > best.w) best = { cols, w };
  }
  els.tiles.style.setProperty("--cols", String(best.cols));
  els.tiles.style.setProperty("--tile-w", `${Math.floor(best.w)}px`);
}
if ("ResizeObserver" in window) new ResizeObserver(() => layout()).observe(els.tiles);
else addEventListener("resize", layout);

function renderSounds() {
  const wanted = new Map();
  for (const r of peer ? peer.remote() : []) if (r.kind === "audio") wanted.set(r.mid, r.track);
  for (const audio of [...els.sounds.children]) {
    if (!wanted.has(audio.dataset.mid)) {
      audio.srcObject = null;
      audio.remove();
    }
  }
  for (const [mid, track] of wanted) {
    let audio = els.sounds.querySelector(`audio[data-mid="${CSS.escape(mid)}"]`);
    if (!audio) {
      audio = h("audio", { autoplay: true, "data-mid": mid });
      els.sounds.append(audio);
    }
    if (audio.srcObject?.getTracks()[0] !== track) audio.srcObject = new MediaStream([track]);
  }
}

// --- people panel -------------------------------------------------------------------

function hostButton(label, onClick, cls = "act") {
  const button = h("button", { type: "button", class: cls, text: label });
  button.addEventListener("click", onClick);
  return button;
}

function renderPeople() {
  const participants = state?.participants || [];
  els.peopleCount.textContent = participants.length ? String(participants.length) : "";
  $("people-title").textContent = fmt("peopleCount", { count: participants.length });
  els.people.replaceChildren(
    ...participants.map((p) => {
      const me = p.user.id === ME;
      const li = h(
        "li",
        { "data-user": p.user.id, class: state.active_speaker === p.user.id ? "speaking" : "" },
        h("span", { class: "avatar-small", "aria-hidden": "true", text: initials(p.user.name) }),
        h("span", { class: "person" }, h("bdi", { text: me ? fmt("you", { name: p.user.name }) : p.user.name })),
        h("span", { class: "badges" }, ...participantBadges(p)),
      );
      const mayLet = isHost || !!participants.find((q) => q.user.id === ME)?.presenter;
      if (mayLet && !me && p.listener) {
        li.append(h("div", { class: "person-actions" },
          hostButton(p.may_speak ? T.stopSpeak : T.letSpeak, () => hostAct(p.may_speak ? "stop_speak" : "allow_speak", p.user.id), "act speak"),
        ));
      }
      if (isHost && !me) {
        const muted = p.host_muted.includes("mic");
        li.append(h("div", { class: "person-actions" },
          hostButton(muted ? T.hostUnmute : T.hostMute, () => {
            meetingHint({ type: "meeting_host", action: muted ? "unmute" : "mute", user: p.user.id, source: "mic" });
          }, "act mod"),
          hostButton(T.remove, () => {
            if (confirm(fmt("removeConfirm", { name: p.user.name }))) hostAct("remove", p.user.id);
          }, "act danger"),
        ));
      }
      return li;
    }),
  );
  if (isHost && els.waitingList) {
    const waiting = state?.waiting || [];
    els.lock.checked = !!state?.locked;
    els.lobby.checked = !!state?.lobby;
    els.waitingList.replaceChildren(
      ...(waiting.length
        ? waiting.map((u) =>
            h(
              "li",
              {},
              h("span", { class: "person" }, h("bdi", { text: u.name })),
              hostButton(T.admit, () => hostAct("admit", u.id), "act"),
              hostButton(T.deny, () => hostAct("deny", u.id), "act danger"),
            ),
          )
        : [h("li", { class: "hint", text: T.nobodyWaiting })]),
    );
    if (waiting.length && els.panel.hidden) els.peopleButton.classList.add("attention");
  }
}

function renderRecording() {
  els.recIndicator.hidden = !recording;
  els.recordMeRow.hidden = !recording || phase !== "in";
  els.recordMe.checked = recorded;
  if (els.recordToggle) {
    els.recordToggle.textContent = recording ? T.stopRecording : T.startRecording;
    els.recordToggle.classList.toggle("btn-danger", recording);
    els.markerForm.hidden = !recording;
  }
}

// --- workshop tables ------------------------------------------------------------------

const clock = (ms) => {
  const seconds = Math.ceil(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
};

/** Leave this meeting and join `target` (a table, or the meeting back) on the same socket. */
async function moveTo(target) {
  if (phase !== "in" || moving || !target || target === meetingId) return;
  moving = true;
  try {
    try {
      await hub.request({ type: "meeting_leave", meeting: meetingId });
    } catch {
      // Already out: join the other one all the same.
    }
    stopAll();
    state = null;
    reception = null;
    meetingId = target;
    await sendJoin();
  } catch (frame) {
    ended(null, errorText(frame));
  } finally {
    moving = false;
    renderAll();
  }
}

function myTable() {
  return tables?.tables.find((t) => t.members.some((m) => m.id === ME)) || null;
}

function tableName(table) {
  return table.label ? fmt("tablesAt", { number: table.number, label: table.label }) : fmt("tablesAtNumber", { number: table.number });
}

/** Who is in this meeting (as its state says) and seated at no table, hosts aside. */
function unseated() {
  const seated = new Set((tables?.tables || []).flatMap((t) => t.members.map((m) => m.id)));
  return (state?.participants || []).filter((p) => !p.host && !seated.has(p.user.id));
}

function tableSelect(count, label, value = 1) {
  return h(
    "select",
    { "aria-label": label },
    ...Array.from({ length: count }, (_, i) => h("option", { value: i + 1, text: fmt("tablesTableN", { number: i + 1 }) })),
  );
}

function renderHandSeats() {
  const hand = $("tables-split")?.value === "hand";
  const box = $("tables-hand");
  if (!box) return;
  box.hidden = !hand;
  if (!hand) return;
  const count = Math.min(Math.max(Number($("tables-count").value) || 2, 1), 20);
  const people = (state?.participants || []).filter((p) => !p.host);
  const list = $("tables-hand-list");
  const before = new Map([...list.querySelectorAll("li")].map((li) => [li.dataset.user, li.querySelector("select").value]));
  list.replaceChildren(
    ...people.map((p, i) => {
      const select = tableSelect(count, p.user.name);
      select.value = String(Math.min(Number(before.get(String(p.user.id)) || (i % count) + 1), count));
      return h("li", { "data-user": p.user.id }, h("bdi", { class: "person", text: p.user.name }), select);
    }),
  );
}

function renderTables() {
  const here = tables?.tables.find((t) => t.meeting === meetingId) || null;
  // A late comer in the meeting while it is split: told so until a host seats him.
  const waiting = !!tables && !here && !isHost && meetingId === tables.meeting && !myTable();
  els.tablesBar.hidden = !(here || waiting) || phase !== "in";
  els.tablesChat.hidden = !here;
  if (here) {
    els.tablesWhere.textContent = tableName(here);
    els.tablesChat.href = `/rooms/${here.room}/`;
    els.tablesBack.hidden = !isHost;
  } else if (waiting) {
    els.tablesWhere.textContent = T.tablesWaiting;
    els.tablesBack.hidden = true;
  }
  const left = tables?.ends_at ? Date.parse(tables.ends_at) - Date.now() : null;
  els.tablesTimer.textContent = left !== null && left > 0 ? fmt("tablesTimer", { time: clock(left) }) : "";
  if (!els.tablesForm) return;
  els.tablesForm.hidden = !!tables;
  els.tablesHost.hidden = !tables;
  if (!tables) return;
  els.tablesList.replaceChildren(
    ...tables.tables.map((t) =>
      h(
        "li",
        { "data-table": t.number },
        h("span", { class: "person" }, h("bdi", { text: tableName(t) })),
        h("span", { class: "hint", text: fmt("tablesPeople", { count: t.members.length }) }),
        t.meeting === meetingId ? "" : hostButton(T.tablesVisit, () => moveTo(t.meeting), "act"),
      ),
    ),
  );
  // Late comers (seen from the meeting itself): the host seats each at a table by hand.
  const out = meetingId === tables.meeting ? unseated() : [];
  $("tables-unseated").replaceChildren(
    ...out.map((p) => {
      const select = tableSelect(tables.tables.length, p.user.name);
      return h(
        "li",
        { "data-user": p.user.id },
        h("span", { class: "person" }, h("bdi", { text: p.user.name }), h("span", { class: "hint", text: ` · ${T.tablesUnseated}` })),
        select,
        hostButton(T.tablesSeat, () => tablesAct({ action: "seat", user: p.user.id, table: Number(select.value) }), "act"),
      );
    }),
  );
}
setInterval(() => tables?.ends_at && renderTables(), 1000);

async function tablesAct(frame) {
  try {
    return await hub.request({ type: "meeting_tables", meeting: tables?.meeting || meetingId, ...frame });
  } catch (reply) {
    toast(errorText(reply), "error");
    return null;
  }
}

els.tablesForm?.addEventListener("submit", (event) => {
  event.preventDefault();
  const split = $("tables-split").value;
  const count = Number($("tables-count").value) || 2;
  const frame = { action: "open", split, count, minutes: Number($("tables-minutes").value) || null };
  if (split === "hand") {
    const seats = Array.from({ length: count }, () => []);
    for (const li of $("tables-hand-list").querySelectorAll("li")) {
      seats[Number(li.querySelector("select").value) - 1].push(Number(li.dataset.user));
    }
    frame.seats = seats;
  }
  tablesAct(frame);
});
$("tables-split")?.addEventListener("change", renderHandSeats);
$("tables-count")?.addEventListener("change", renderHandSeats);
$("tables-broadcast")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("tables-text").value.trim();
  if (text && (await tablesAct({ action: "broadcast", text }))) $("tables-text").value = "";
});
$("tables-close")?.addEventListener("click", () => tablesAct({ action: "close" }));
els.tablesBack.addEventListener("click", () => tables && moveTo(tables.meeting));

function renderAll() {
  renderRecording();
  renderTables();
  renderHandSeats();
  renderControls();
  renderTiles();
  renderSounds();
  if (state) renderPeople();
}

// --- data usage -------------------------------------------------------------------

const kbps = new Intl.NumberFormat(LANG, { maximumFractionDigits: 0 });
const mb = new Intl.NumberFormat(LANG, { style: "unit", unit: "megabyte", maximumFractionDigits: 1 });
const kb = new Intl.NumberFormat(LANG, { style: "unit", unit: "kilobyte", maximumFractionDigits: 0 });
const bytes = (n) => (n < 1e6 ? kb.format(n / 1e3) : mb.format(n / 1e6));
const samples = [];

async function meter() {
  if (phase !== "in") return;
  const now = peer ? await peer.usage() : { sent: 0, received: 0 };
  const total = { sent: usageBase.sent + now.sent, received: usageBase.received + now.received };
  const at = Date.now();
  samples.push({ at, bytes: total.sent + total.received });
  while (samples.length > 2 && at - samples[0].at > 30000) samples.shift();
  const first = samples[0];
  const perMinute = at > first.at ? ((total.sent + total.received - first.bytes) * 60000) / (at - first.at) : 0;
  els.meterText.textContent = fmt("usage", {
    up: bytes(total.sent),
    down: bytes(total.received),
    rate: bytes(perMinute),
  });
}
setInterval(meter, 2000);

// --- status -------------------------------------------------------------------------

function setStatus(text, kind = "") {
  els.status.hidden = !text;
  els.status.textContent = text || "";
  els.status.dataset.state = kind;
}

// --- the socket -----------------------------------------------------------------------

const hub = new Hub({ loginUrl: C.loginUrl || "/login/" });
window.hirfaHub = hub; // for the browser tests and for debugging

hub.on("status", ({ state: s, retryIn }) => {
  document.body.dataset.connection = s;
  if (s === "offline" || s === "too_many" || s === "busy") {
    if (["in", "lobby"].includes(phase)) socketLost = true;
    const key = { offline: "offline", too_many: "tooManySockets", busy: "busy" }[s];
    setStatus(fmt(key, { seconds: Math.ceil((retryIn || 0) / 1000) }), "offline");
  } else if (s === "connecting") {
    if (!els.status.dataset.state) setStatus(T.connecting, "connecting");
  } else if (s === "reload") {
    setStatus(T.reload, "offline");
  } else if (s === "online") {
    setStatus("");
    // The server left the meeting with the old socket: join again (first: a call waits).
    if (socketLost) {
      socketLost = false;
      rejoin();
    }
    hub.request({ type: "meeting_info", room: ROOM }).then(roomMeeting, () => {});
  }
});

function roomMeeting(frame) {
  if (frame.room !== ROOM) return;
  live = frame.live ? frame.meeting : null;
  if (phase !== "in") {
    recording = !!frame.recording && !!live;
    renderRecording();
  }
  if (phase === "prejoin") updateJoinButton();
  else els.liveTag.hidden = !live;
}

hub.on("meeting", roomMeeting);
hub.on("meeting_joined", (frame) => joined(frame));
hub.on("meeting_lobby", (frame) => {
  meetingId = frame.meeting;
  setPhase("lobby");
});
hub.on("meeting_ice_servers", (frame) => {
  iceServers = frame.ice_servers || [];
  // Renewed credentials (they live an hour at most): the next ICE restart uses them.
  peer?.pc.setConfiguration({ iceServers, bundlePolicy: "max-bundle" });
});
hub.on("meeting_offer", (frame) => {
  if (frame.meeting !== meetingId || phase !== "in") return;
  if (!peer || frame.revision === 1) {
    closePeer();
    peer = newPeer();
  }
  peer.offer(frame);
});
hub.on("meeting_state", (frame) => {
  if (frame.meeting !== meetingId) return;
  const mine = frame.participants.find((p) => p.user.id === ME);
  const nowMuted = !!mine && mine.host_muted.includes("mic");
  if (nowMuted !== hostMutedMic) {
    hostMutedMic = nowMuted;
    if (local.mic) local.mic.enabled = !hostMutedMic && !selfMuted.mic;
    toast(hostMutedMic ? T.hostMutedYou : T.hostUnmutedYou);
  }
  if (mine) hand = mine.hand;
  const nowMaySpeak = mine ? mine.may_speak !== false : maySpeak;
  if (maySpeak === null) maySpeak = nowMaySpeak;
  else if (nowMaySpeak !== maySpeak) {
    maySpeak = nowMaySpeak;
    if (maySpeak) {
      // Let speak: what is open goes out now (the server withheld it since the join).
      for (const source of ["mic", "camera"]) if (local[source] && !(source === "camera" && opts().audioOnly)) meetingHint({ type: "meeting_publish", source });
      toast(T.youMaySpeak);
    } else {
      if (local.screen) stopTrack("screen");
      toast(T.speakStopped);
    }
  }
  // A listener's connection gives the first presenter's video the first claim on it.
  const presenter = frame.participants.find((p) => p.presenter && p.user.id !== ME);
  if (mine?.listener && presenter && !presenterPinned && reception?.pinned == null) {
    presenterPinned = true;
    meetingHint({ type: "meeting_pin", user: presenter.user.id });
  }
  if (!!frame.recording !== recording) {
    recording = !!frame.recording;
    toast(recording ? T.recordingStarted : T.recordingStopped);
  }
  state = frame;
  // At a workshop table (no masterclass) or without the right, the second camera stops.
  if (local.camera2 && !mayShowHands()) stopTrack("camera2");
  renderAll();
});
hub.on("meeting_reception", (frame) => {
  if (frame.meeting !== meetingId) return;
  const was = reception?.audio_only;
  reception = frame;
  if (frame.audio_only && !was) toast(T.audioOnlyConnection);
  if (frame.slots?.length && peer) {
    peer.reslot(frame.slots);
    renderAll();
  } else renderTiles();
});
hub.on("meeting_tables", async (frame) => {
  const was = tables;
  tables = frame.open ? frame : null;
  if (frame.ended) {
    // A host ended the meeting (from a table, or from the meeting): out of wherever we sit.
    renderTables();
    if (!["in", "lobby", "joining"].includes(phase)) return;
    const id = meetingId;
    try {
      if (id) await hub.request({ type: "meeting_leave", meeting: id });
    } catch {
      // Already out.
    }
    ended(null, T.tablesEnded);
    stopTrack("mic");
    stopTrack("camera");
    return;
  }
  if (frame.notice) toast(fmt("tablesNotice", { text: frame.notice }));
  renderTables();
  if (phase !== "in") return;
  const mine = myTable();
  if (mine) {
    if (!was) toast(T.tablesOpened);
    moveTo(mine.meeting); // seated: to my table (nothing to do when already there)
  } else if (!frame.open && meetingId !== frame.meeting) {
    toast(T.tablesBack);
    moveTo(frame.meeting); // everyone back (a visiting host too)
  }
});
$("reception-retry").addEventListener("click", () => meetingHint({ type: "meeting_retry_video" }));
hub.on("meeting_rejoin", (frame) => {
  if (frame.meeting === meetingId) rejoin();
});
hub.on("meeting_ended", (frame) => {
  if (frame.meeting !== meetingId || moving) return;
  ended(frame.reason);
  if (frame.reason !== "left") {
    stopTrack("mic");
    stopTrack("camera");
  }
});
hub.on("error", (frame) => {
  // An answer to a superseded offer, or one the server refused (it sends a fresh offer).
  if (["conflict", "invalid_sdp"].includes(frame.code)) {
    console.warn("meeting", frame.code, frame.message);
    return;
  }
  toast(errorText(frame), "error");
});
hub.on("removed", (frame) => {
  if (frame.room === ROOM) ended("removed");
});

/** For the browser tests: what the peer connection receives, by "user:source". */
window.hirfaMeeting = {
  phase: () => phase,
  inbound: () => (peer ? peer.inbound() : Promise.resolve({})),
  outbound: () => (peer ? peer.outbound() : Promise.resolve({})),
  usage: () => (peer ? peer.usage() : Promise.resolve({ sent: 0, received: 0 })),
  state: () => state,
  reception: () => reception,
  tables: () => tables,
  meeting: () => meetingId,
  encodings: (source) => (peer?.publishing(source)?.sender.getParameters().encodings || []).map((e) => ({
    rid: e.rid, active: e.active, scale: e.scaleResolutionDownBy, maxBitrate: e.maxBitrate,
  })),
  recording: () => ({ recording, recorded }),
  mlines: () => (peer ? [...peer.mlines.values()] : []),
  sdp: () => (peer ? { offer: peer.pc.remoteDescription?.sdp, answer: peer.pc.localDescription?.sdp } : null),
  generation: () => generation,
  iceState: () => peer?.pc.iceConnectionState ?? null,
  restartIce: () => iceRestart(),
  caps: () => {
    const out = {};
    for (const source of ["camera", "camera2", "screen"]) {
      const sender = peer?.publishing(source)?.sender;
      // The highest active layer's cap (one encoding without simulcast).
      const caps = (sender?.getParameters().encodings || []).filter((e) => e.active !== false).map((e) => e.maxBitrate ?? 0);
      if (sender) out[source] = caps.length ? Math.max(...caps) : null;
    }
    return out;
  },
};

// --- start -----------------------------------------------------------------------------

// The page serves Join disabled; it is enabled here, once its handler is bound.
setPhase("prejoin");
hub.watch(ROOM, { resume: false });
hub.start();
devicesOpening = preparePreview();
