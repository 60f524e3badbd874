// What a call's getStats say per source, loaded once a call is on (not in the meeting page's
// first load): the page's diagnostics (window.hirfaMeeting) read them.

/** Per publisher and source, what was decoded (video) and received (audio). */
export async function inbound(pc, mlines) {
  const bySsrcMid = new Map();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    const m = mlines.get(s.mid);
    const key = m && m.source ? `${m.user}:${m.source}` : `mid:${s.mid}`;
    bySsrcMid.set(key, {
      kind: s.kind,
      framesDecoded: s.framesDecoded || 0,
      packetsReceived: s.packetsReceived || 0,
      totalSamplesReceived: s.totalSamplesReceived || 0,
      bytesReceived: s.bytesReceived || 0,
    });
  });
  return Object.fromEntries(bySsrcMid);
}

/** Per own source, what was sent (all layers summed): {source: {packetsSent, framesEncoded}}. */
export async function outbound(pc, mlines) {
  const out = {};
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type !== "outbound-rtp") return;
    const m = mlines.get(s.mid);
    if (!m || m.direction !== "publish") return;
    const sent = out[m.source] || { packetsSent: 0, framesEncoded: 0 };
    sent.packetsSent += s.packetsSent || 0;
    sent.framesEncoded += s.framesEncoded || 0;
    out[m.source] = sent;
  });
  return out;
}
