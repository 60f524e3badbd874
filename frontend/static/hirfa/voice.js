// Voice messages: the composer's hold-to-record button and the player in a message.
//
// Recording: hold the microphone to record, release to send, slide away to cancel; a
// short tap (or Enter on a keyboard) keeps it recording until Send or Cancel. The
// recorder stops by itself at the hub's cap. Chrome, Firefox and Android record Opus
// (WebM or Ogg), Safari AAC in MP4; the hub decodes whatever arrives (hub/audio.py).
//
// Playing: the recording is fetched once, when first played (a permission-checked URL,
// kept by the member's own browser), so a room full of voice messages costs nothing
// until one is played; its duration and waveform come with the message.

import { h, icon } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HOLD_MS = 450; // shorter than this, a press is a tap: recording goes on until Send
const CANCEL_PX = 90; // a finger that slides this far off the button cancels
const MIN_MS = 700;

/** "1:05" for 65 000 ms, with the page's digits. */
export function clock(ms, numberFormat) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const two = (n) => numberFormat.format(n).padStart(2, numberFormat.format(0));
  return `${numberFormat.format(Math.floor(seconds / 60))}:${two(seconds % 60)}`;
}

/** The MIME type this browser records voice in (Opus where it can, AAC on Safari). */
export function recordingType() {
  if (!("MediaRecorder" in window)) return null;
  const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4;codecs=mp4a.40.2", "audio/mp4"];
  return wanted.find((t) => MediaRecorder.isTypeSupported(t)) ?? "";
}

export const canRecord = () => !!navigator.mediaDevices?.getUserMedia && recordingType() !== null;

/**
 * Wire the composer's microphone `button` and its recording `bar` (elapsed time, Cancel,
 * Send). `onRecorded(blob)` gets each finished recording; `onError(text)` what went wrong.
 */
export function setupRecorder({ button, bar, elapsed, cancel, send, maxSeconds, T, numberFormat, onRecorded, onError }) {
  let recorder = null;
  let stream = null;
  let chunks = [];
  let started = 0;
  let timer = null;
  let pressed = null; // {x, y, at} while a pointer holds the button
  let keep = false; // whether the recording ends in a message (false: cancelled)

  const show = (recording) => {
    bar.hidden = !recording;
    button.setAttribute("aria-pressed", String(recording));
    button.classList.toggle("recording", recording);
    document.body.classList.toggle("voice-recording", recording);
  };

  function tick() {
    const ms = Date.now() - started;
    elapsed.textContent = `${clock(ms, numberFormat)} / ${clock(maxSeconds * 1000, numberFormat)}`;
    if (ms >= maxSeconds * 1000) stop(true);
  }

  async function start() {
    if (recorder) return;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch {
      onError(T.micRefused);
      return;
    }
    const type = recordingType();
    try {
      // 32 kbit/s: a minute is ~240 kB, clear speech over a rural 3G link.
      recorder = new MediaRecorder(stream, { ...(type ? { mimeType: type } : {}), audioBitsPerSecond: 32000 });
    } catch {
      release();
      onError(T.micRefused);
      return;
    }
    chunks = [];
    keep = false;
    recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
    recorder.addEventListener("stop", () => {
      const ms = Date.now() - started;
      const blob = new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" });
      release();
      if (!keep) return;
      if (ms < MIN_MS) onError(T.voiceHold);
      else onRecorded(blob);
    });
    started = Date.now();
    recorder.start(1000);
    show(true);
    tick();
    timer = setInterval(tick, 250);
  }

  function release() {
    clearInterval(timer);
    timer = null;
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    recorder = null;
    pressed = null;
    show(false);
  }

  function stop(send) {
    if (!recorder) return;
    keep = send;
    if (recorder.state !== "inactive") recorder.stop();
    else release();
  }

  button.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || recorder) return;
    event.preventDefault();
    button.setPointerCapture?.(event.pointerId);
    pressed = { x: event.clientX, y: event.clientY, at: Date.now() };
    start();
  });
  button.addEventListener("pointermove", (event) => {
    if (pressed && Math.hypot(event.clientX - pressed.x, event.clientY - pressed.y) > CANCEL_PX) stop(false);
  });
  button.addEventListener("pointerup", () => {
    if (!pressed) return;
    const held = Date.now() - pressed.at;
    pressed = null;
    // A tap keeps recording (Send or Cancel end it); a hold sends on release.
    if (held >= HOLD_MS) stop(true);
  });
  button.addEventListener("pointercancel", () => pressed && stop(false));
  button.addEventListener("contextmenu", (event) => event.preventDefault());
  // A keyboard (or a screen reader) presses the button: it toggles.
  button.addEventListener("click", (event) => {
    if (event.detail !== 0) return;
    if (recorder) stop(true);
    else start();
  });
  cancel.addEventListener("click", () => stop(false));
  send.addEventListener("click", () => stop(true));
  document.addEventListener("keydown", (event) => event.key === "Escape" && recorder && stop(false));
}

// A message is drawn again on every change (a reaction, a member who heard it): its
// player is the same node, so what plays goes on playing.
const players = new Map(); // attachment id -> {box, heard(voice)}

/**
 * A voice message's player: play/pause, the waveform (which fills as it plays and seeks
 * on a tap), the time, and whether it was heard. `onPlayed()` runs on its first play.
 */
export function voicePlayer(voice, options) {
  const known = players.get(voice.id);
  if (known) {
    known.heard(voice);
    return known.box;
  }
  const player = makePlayer(voice, options);
  players.set(voice.id, player);
  return player.box;
}

function makePlayer(voice, { T, fmt, me, mine, sprite, numberFormat, onPlayed }) {
  const heardByMe = voice.listened_by.includes(me);
  const box = h("div", { class: `voice${!mine && !heardByMe ? " unheard" : ""}`, "data-voice": voice.id });
  const total = clock(voice.duration_ms, numberFormat);
  const label = fmt("voicePlay", { time: total });
  const play = h("button", { type: "button", class: "voice-play", "aria-label": label, title: label });
  play.append(icon(sprite, "play"));
  const wave = document.createElementNS(SVG, "svg");
  const bars = voice.waveform.length || 1;
  wave.setAttribute("class", "voice-wave");
  wave.setAttribute("viewBox", `0 0 ${bars * 3} 32`);
  wave.setAttribute("preserveAspectRatio", "none");
  wave.setAttribute("aria-hidden", "true");
  voice.waveform.forEach((v, i) => {
    const rect = document.createElementNS(SVG, "rect");
    const height = Math.max(2, v);
    for (const [k, value] of Object.entries({ x: i * 3, y: (32 - height) / 2, width: 2, height, rx: 1 })) {
      rect.setAttribute(k, String(value));
    }
    wave.append(rect);
  });
  const time = h("span", { class: "voice-time", text: total });
  const heard = h("span", { class: "voice-heard" });
  box.append(play, wave, time, heard);
  const showHeard = (v) => {
    heard.hidden = !(mine && v.listened_by.length);
    heard.textContent = heard.hidden ? "" : fmt("voiceHeard", { count: v.listened_by.length });
    if (v.listened_by.includes(me)) box.classList.remove("unheard");
  };
  showHeard(voice);

  let audio = null;
  let loading = null;
  // The hub measured the duration; a browser may not know it before the end.
  const seconds = () => (audio && Number.isFinite(audio.duration) ? audio.duration : voice.duration_ms / 1000) || 1;
  const paint = () => {
    const done = audio ? Math.min(1, audio.currentTime / seconds()) : 0;
    const filled = Math.round(done * bars);
    [...wave.children].forEach((rect, i) => rect.classList.toggle("played", i < filled));
    time.textContent = audio && !audio.paused ? clock(audio.currentTime * 1000, numberFormat) : total;
  };
  const setPlaying = (playing) => {
    play.replaceChildren(icon(sprite, playing ? "pause" : "play"));
    const text = playing ? T.voicePause : label;
    play.setAttribute("aria-label", text);
    play.title = text;
    box.classList.toggle("playing", playing);
  };

  async function load() {
    const response = await fetch(voice.url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    const blob = await response.blob();
    const element = new Audio();
    if (!element.canPlayType(voice.content_type || blob.type)) throw new Error("unsupported");
    element.preload = "auto";
    element.src = URL.createObjectURL(blob);
    element.addEventListener("timeupdate", paint);
    element.addEventListener("play", () => setPlaying(true));
    element.addEventListener("pause", () => (setPlaying(false), paint()));
    element.addEventListener("ended", () => {
      element.currentTime = 0;
      paint();
    });
    element.addEventListener("playing", () => {
      box.classList.remove("unheard");
      onPlayed?.();
    }, { once: true });
    return element;
  }

  play.addEventListener("click", async () => {
    try {
      loading ??= load();
      audio = await loading;
    } catch (error) {
      loading = null;
      time.textContent = error.message === "unsupported" ? T.voiceUnsupported : T.voiceFailed;
      return;
    }
    // Only one voice message plays at a time.
    for (const other of document.querySelectorAll(".voice.playing")) if (other !== box) other.querySelector(".voice-play").click();
    if (audio.paused) audio.play().catch(() => (time.textContent = T.voiceFailed));
    else audio.pause();
  });
  wave.addEventListener("click", (event) => {
    if (!audio) return;
    const rect = wave.getBoundingClientRect();
    const rtl = getComputedStyle(wave).direction === "rtl";
    const x = rtl ? rect.right - event.clientX : event.clientX - rect.left;
    audio.currentTime = Math.min(1, Math.max(0, x / rect.width)) * seconds();
    paint();
  });
  return { box, heard: showHeard };
}
