// One RTCPeerConnection to the SFU, driven by the server's offers
// (docs/protocol.md, "Meetings"): the client never calls createOffer and never
// adds transceivers; it answers each meeting_offer, putting its own tracks on
// the m-lines marked "publish".
//
// Guarantees:
// - offers are applied one at a time, in the order they arrive;
// - the camera is capped by the chosen quality (maxBitrate besides the page's
//   getUserMedia constraints); when the offer asks for simulcast (RIDs l, m, h)
//   it is sent as 180p, 360p and 720p layers, each only if the capture reaches it;
// - a screen share keeps its resolution and drops its frame rate first;
// - onStall once nothing arrived for SILENCE_MS (the SFU sends every 0.5 s;
//   Chromium says ICE "disconnected" 5-7 s late) or ICE is disconnected or
//   failed; `stalled` says if it still is; onTrouble once it failed or stayed
//   disconnected DISCONNECTED_GRACE_MS (the page restarts ICE: the server's next
//   offer carries new ICE credentials);
// - a publisher's voice waits for his picture when it plays behind (lipSync);
// - close() stops every timer; usage() keeps answering the last totals after it.

// Short: a phone that changed network gets its media back sooner (the server keeps its place).
const DISCONNECTED_GRACE_MS = 2000;
const SILENCE_MS = 1000;
const SILENCE_POLL_MS = 500;
const LIP_SYNC_POLL_MS = 1000;

/** Camera presets: getUserMedia constraints and the sender's bitrate cap. */
export const QUALITY = {
  low: { width: 320, height: 180, frameRate: 15, maxBitrate: 150_000, screenBitrate: 300_000 },
  standard: { width: 640, height: 360, frameRate: 24, maxBitrate: 500_000, screenBitrate: 800_000 },
  high: { width: 1280, height: 720, frameRate: 30, maxBitrate: 1_200_000, screenBitrate: 1_500_000 },
};

/** Simulcast layers by RID: the height aimed at, the bitrate cap, the frame rate cap. */
export const LAYERS = {
  l: { height: 180, maxBitrate: 150_000, frameRate: 15 },
  m: { height: 360, maxBitrate: 500_000, frameRate: 24 },
  h: { height: 720, maxBitrate: 1_200_000, frameRate: 30 },
};

/**
 * The sender encodings of a simulcast camera for a quality preset: each layer
 * whose height the capture reaches is active, scaled down to it, capped by
 * the layer and by the preset; the lowest layer is always on.
 */
export function simulcastEncodings(encodings, quality) {
  const q = QUALITY[quality] || QUALITY.standard;
  return encodings.map((encoding, index) => {
    const layer = LAYERS[encoding.rid] || LAYERS.l;
    const active = index === 0 || layer.height <= q.height;
    return {
      ...encoding,
      active,
      scaleResolutionDownBy: Math.max(1, q.height / layer.height),
      maxBitrate: Math.min(layer.maxBitrate, q.maxBitrate),
      maxFramerate: Math.min(layer.frameRate, q.frameRate),
    };
  });
}

/** A camera turned off: one black frame a second on its lowest layer (signaling/sfu/README.md). */
export function cameraOff(encodings) {
  return encodings.map((e, i) => (i ? { ...e, active: false } : { ...e, active: true, maxBitrate: 30_000, maxFramerate: 1 }));
}

/** getUserMedia video constraints for a quality preset and a device. */
export function videoConstraints(quality, deviceId) {
  const q = QUALITY[quality] || QUALITY.standard;
  const video = {
    width: { ideal: q.width, max: q.width },
    height: { ideal: q.height, max: q.height },
    frameRate: { ideal: q.frameRate, max: q.frameRate },
  };
  if (deviceId) video.deviceId = { exact: deviceId };
  return video;
}

export class SfuPeer {
  /**
   * @param {object} o
   * @param {RTCIceServer[]} o.iceServers
   * @param {(frame: object) => void} o.send  sends a meeting frame (meeting id added by the caller)
   * @param {() => Object<string, MediaStreamTrack>} o.tracks  by source (mic, camera, camera2, screen)
   * @param {() => string} o.quality
   * @param {() => void} o.onChange  the remote m-lines changed (after each answer)
   * @param {() => void} o.onTrouble  the connection needs an ICE restart
   * @param {() => void} [o.onStall]  the connection stalled: the network may have changed
   */
  constructor({ iceServers, send, tracks, quality, onChange, onTrouble, onStall = () => {} }) {
    this.send = send;
    this.tracks = tracks;
    this.quality = quality;
    this.onChange = onChange;
    this.onTrouble = onTrouble;
    this.onStall = onStall;
    this.mlines = new Map();
    // Slot switches told by meeting_reception since the last offer arrived (newer than it).
    this.switched = new Map();
    this.queue = Promise.resolve();
    this.closed = false;
    this.troubleTimer = null;
    this.totals = { sent: 0, received: 0 };
    this.heard = { count: -1, at: 0 };
    this.silent = false;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [], bundlePolicy: "max-bundle" });
    this.pc.onicecandidate = (event) => this.trickle(event.candidate);
    this.pc.oniceconnectionstatechange = () => this.watch();
    this.silenceTimer = setInterval(() => this.listen(), SILENCE_POLL_MS);
    this.voiceBuffers = new Map();
    this.lipSyncTimer = setInterval(() => this.lipSync(), LIP_SYNC_POLL_MS);
  }

  async lipSync() {
    if (this.closed) return;
    const { holdVoices } = await import("./lip-sync.js");
    if (!this.closed) await holdVoices(this.pc, this.mlines, this.voiceBuffers);
  }

  get stalled() {
    return this.silent || ["disconnected", "failed"].includes(this.pc.iceConnectionState);
  }

  /** Anything received since the last look? Silent SILENCE_MS: onStall, once. */
  async listen(now = Date.now()) {
    if (this.closed) return;
    if (!this.silent && !["connected", "completed"].includes(this.pc.iceConnectionState)) {
      this.heard = { count: -1, at: now };
      return; // watch() has it
    }
    let count = 0;
    try {
      const report = await this.pc.getStats();
      report.forEach((s) => {
        if (s.type === "transport") count += (s.bytesReceived || 0) + (s.packetsReceived || 0);
        if (s.type === "candidate-pair") count += (s.requestsReceived || 0) + (s.responsesReceived || 0);
      });
    } catch {
      return; // closed meanwhile
    }
    if (count !== this.heard.count) {
      this.heard = { count, at: now };
      this.silent = false;
    } else if (!this.silent && now - this.heard.at >= SILENCE_MS) {
      this.silent = true;
      this.onStall();
    }
  }

  /** Apply a server offer (queued behind the previous ones) and answer it. */
  offer(frame) {
    this.switched = new Map();
    this.queue = this.queue
      .then(() => this.apply(frame))
      .catch((err) => console.warn("meeting offer", frame.revision, err));
    return this.queue;
  }

  async apply(frame) {
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
    this.mlines = new Map(frame.mlines.map((m) => [m.mid, m]));
    for (const [mid, m] of this.switched) if (this.mlines.has(mid)) this.mlines.set(mid, m);
    const local = this.tracks();
    for (const transceiver of this.pc.getTransceivers()) {
      const m = transceiver.mid !== null && this.mlines.get(transceiver.mid);
      if (!m || transceiver.currentDirection === "stopped") continue;
      if (m.direction === "publish") {
        await transceiver.sender.replaceTrack(local[m.source] || null);
        transceiver.direction = "sendonly";
      } else {
        // Always ready to receive: an empty slot gets a source without a new offer (an idle
        // m-line the server offers inactive is answered inactive all the same).
        transceiver.direction = "recvonly";
      }
    }
    // A re-offer resets the simulcast layers to the offer's (all on): capped again at once.
    await this.applyCaps();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    if (this.closed) return;
    this.send({ type: "meeting_answer", sdp: this.pc.localDescription.sdp, revision: frame.revision });
    await this.applyCaps();
    this.onChange();
  }

  /** Slots: the server switched sources into some of our m-lines (meeting_reception's `slots`). */
  reslot(slots) {
    for (const m of slots || []) {
      this.switched.set(m.mid, m);
      if (this.mlines.has(m.mid)) this.mlines.set(m.mid, m);
    }
  }

  trickle(candidate) {
    if (this.closed) return;
    if (candidate && !candidate.candidate) return; // Chrome's per-m-line end marker
    this.send({
      type: "meeting_candidate",
      candidate: candidate ? candidate.candidate : null,
      sdp_mid: candidate ? candidate.sdpMid : null,
      sdp_mline_index: candidate ? candidate.sdpMLineIndex : null,
    });
  }

  watch() {
    const state = this.pc.iceConnectionState;
    clearTimeout(this.troubleTimer);
    this.troubleTimer = null;
    if (this.closed) return;
    if (state === "failed") {
      this.onStall();
      this.onTrouble();
    } else if (state === "disconnected") {
      this.onStall();
      this.troubleTimer = setTimeout(() => {
        if (!this.closed && ["disconnected", "failed"].includes(this.pc.iceConnectionState)) this.onTrouble();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** The transceiver carrying our own `source`, if the server opened one. */
  publishing(source) {
    return this.pc
      .getTransceivers()
      .find((t) => t.mid !== null && this.mlines.get(t.mid)?.direction === "publish" && this.mlines.get(t.mid)?.source === source);
  }

  /** Put a new local track on the m-line of `source` (a device change) without renegotiating. */
  async replace(source, track) {
    const transceiver = this.publishing(source);
    if (transceiver) await transceiver.sender.replaceTrack(track || null);
    await this.applyCaps();
  }

  /** Cap the bitrate of our camera and screen senders by the chosen quality (per layer if simulcast). */
  async applyCaps() {
    const q = QUALITY[this.quality()] || QUALITY.standard;
    for (const [source, bitrate] of [["camera", q.maxBitrate], ["camera2", q.maxBitrate], ["screen", q.screenBitrate]]) {
      const sender = this.publishing(source)?.sender;
      if (!sender || !sender.track) continue;
      try {
        const params = sender.getParameters();
        if (!params.encodings || !params.encodings.length) params.encodings = [{}];
        const camera = source === "camera" || source === "camera2";
        if (camera && params.encodings.length > 1) {
          params.encodings = simulcastEncodings(params.encodings, this.quality());
        } else {
          params.encodings[0].maxBitrate = bitrate;
          if (camera) params.encodings[0].maxFramerate = q.frameRate;
        }
        if (camera && !sender.track.enabled) params.encodings = cameraOff(params.encodings);
        // A shared screen's text must stay readable: fewer frames rather than fewer pixels.
        if (source === "screen") params.degradationPreference = "maintain-resolution";
        await sender.setParameters(params);
      } catch (err) {
        console.warn("setParameters", source, err);
      }
    }
  }

  /** What arrives on our subscribe m-lines: [{mid, kind, user, source, track}]. */
  remote() {
    const out = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const m = transceiver.mid !== null && this.mlines.get(transceiver.mid);
      if (!m || m.direction !== "subscribe" || !m.source) continue;
      out.push({ mid: m.mid, kind: m.kind, user: m.user, source: m.source, track: transceiver.receiver.track });
    }
    return out;
  }

  /** Bytes sent and received on this connection so far (RTP and RTCP, from getStats). */
  async usage() {
    if (this.closed) return this.totals;
    try {
      const report = await this.pc.getStats();
      let sent = 0;
      let received = 0;
      let transports = 0;
      report.forEach((s) => {
        if (s.type === "transport") {
          transports += 1;
          sent += s.bytesSent || 0;
          received += s.bytesReceived || 0;
        }
      });
      if (!transports) {
        report.forEach((s) => {
          if (s.type === "outbound-rtp") sent += s.bytesSent || 0;
          if (s.type === "inbound-rtp") received += s.bytesReceived || 0;
        });
      }
      this.totals = { sent, received };
    } catch {
      // The connection closed meanwhile: keep the last totals.
    }
    return this.totals;
  }

  /** Per publisher and source, what was decoded and received (meeting-stats.js). */
  async inbound() {
    return (await import("./meeting-stats.js")).inbound(this.pc, this.mlines);
  }

  /** Per own source, what was sent (meeting-stats.js). */
  async outbound() {
    return (await import("./meeting-stats.js")).outbound(this.pc, this.mlines);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.troubleTimer);
    clearInterval(this.silenceTimer);
    clearInterval(this.lipSyncTimer);
    this.pc.onicecandidate = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }
}
