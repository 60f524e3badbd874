// Lip sync, loaded once a call is on (not in the meeting page's first load). Chromium pairs a
// publisher's voice and picture (one msid stream, the SFU's sender reports) but holds a voice back
// only slowly: its extra delay starts at 0, grows by a few tens of ms a second and counts only once
// it passes the voice's own jitter delay. On a lossy phone link the picture waits a round trip more
// for retransmissions (the video jitter buffer adds the RTT once frames were NACKed), so the voice
// was heard 50-120 ms before the lips moved for the first half minute of a 3G call. Each second
// (SfuPeer.lipSync) a voice's jitterBufferTarget is set to what its jitter buffer held over the
// last second plus how far his picture plays behind it (Chromium's estimatedPlayoutTimestamp: the
// sender's clock), aiming for the voice AIM_MS after the picture (ITU-R BT.1359's window is
// -45 ... +125 ms: a voice ahead of the lips shows sooner than one behind): a set point, not a sum
// of steps, since NetEq reaches a new target only over a second or two. It is let go when he has
// no picture. signaling/sfu/README.md, "Lip sync".
const AIM_MS = 15;
const DEAD_MS = 25;
const MAX_MS = 500;

/**
 * A voice's next jitterBufferTarget (ms) from its current one, `gap` (the instant his voice plays
 * minus the instant his picture plays, ms; positive: the picture is behind; null: no picture) and
 * `delay`, the voice's mean jitter-buffer delay over the last look (ms; null if not known yet).
 */
export function lipSyncTarget(current, gap, delay) {
  if (gap === null) return 0;
  if (Math.abs(gap + AIM_MS) <= DEAD_MS || delay === null) return current;
  return Math.max(0, Math.min(MAX_MS, Math.round(delay + gap + AIM_MS)));
}

/**
 * Hold each subscribed voice back by as much as its own publisher's camera plays behind it.
 * `seen` (kept by the caller between looks) holds each voice's jitter-buffer counters.
 */
export async function holdVoices(pc, mlines, seen) {
  const report = await pc.getStats().catch(() => null);
  if (!report) return;
  const playout = new Map();
  const buffered = new Map();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp" || s.mid == null) return;
    if (s.estimatedPlayoutTimestamp) playout.set(s.mid, s.estimatedPlayoutTimestamp);
    if (s.kind === "audio") buffered.set(s.mid, [s.jitterBufferDelay || 0, s.jitterBufferEmittedCount || 0]);
  });
  const pictures = new Map();
  const voices = [];
  for (const transceiver of pc.getTransceivers()) {
    const m = transceiver.mid !== null && mlines.get(transceiver.mid);
    if (!m || m.direction !== "subscribe" || !m.source) continue;
    if (m.kind === "video" && m.source === "camera" && playout.has(m.mid)) pictures.set(m.user, playout.get(m.mid));
    if (m.kind === "audio" && m.source === "mic") voices.push({ mid: m.mid, user: m.user, receiver: transceiver.receiver });
  }
  for (const { mid, user, receiver } of voices) {
    const now = buffered.get(mid) || [0, 0];
    const before = seen.get(mid);
    seen.set(mid, now);
    const delay = before && now[1] > before[1] ? (1000 * (now[0] - before[0])) / (now[1] - before[1]) : null;
    const current = receiver.jitterBufferTarget || 0;
    const gap = pictures.has(user) && playout.has(mid) ? playout.get(mid) - pictures.get(user) : null;
    const target = lipSyncTarget(current, gap, delay);
    if (target !== current) receiver.jitterBufferTarget = target;
  }
}
