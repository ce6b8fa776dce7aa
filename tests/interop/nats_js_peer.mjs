// SPDX-License-Identifier: MIT
// The foreign side of the interop test: the official NATS JavaScript client (npm package `nats`,
// 2.x) talking to an agentbus bridge (tests/interop/agentbus_peer.cpp) through nats-server.
//
//   node nats_js_peer.mjs nats://127.0.0.1:<port>
//
// Nothing here comes from agentbus: the headers, the codec bytes and the fingerprints are
// written from docs/wire-format.md alone (FNV-1a, little-endian integers and doubles, u32
// length-prefixed strings and vectors, C struct layout with zeroed padding). run_js_interop.sh
// copies this file next to a scratch node_modules/ where it installed `nats`.
//
// Phases (agentbus_peer.cpp describes the other side):
//   1. decode the events the agentbus bus exported (payload, every Agentbus- header, the event's
//      own headers) and compare them with the facts the agentbus peer sent on the control subject;
//   2. publish events the agentbus import must deliver typed, and one with a wrong fingerprint;
//   3. answer the agentbus peer's requests: a value reply, two Agentbus-Error replies, and a
//      reply with a wrong fingerprint.
// The peers coordinate on interop.ctl.to_js / interop.ctl.to_cpp with plain text (no headers).
// Prints "ok - ..." / "not ok - ..." per check; exits 0 when every check passed.
import { connect, headers as natsHeaders } from "nats";

const url = process.argv[2];
if (!url) {
  console.error("usage: node nats_js_peer.mjs nats://127.0.0.1:<port>");
  process.exit(2);
}

const outTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const inTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const rpcTraceparent = "00-11112222333344445555666677778888-9999aaaabbbbcccc-01";
const wrongFingerprint = "7c1a8eb3a0ff9ab6"; // agentbus_peer.cpp looks for it in the problem report

let passed = 0;
let failed = 0;
function check(ok, what, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}${detail === "" ? "" : ": " + detail}`);
  }
  return ok;
}
function finish(code) {
  console.log(`# nats.js peer: ${passed} passed, ${failed} failed`);
  process.exit(code);
}
setTimeout(() => {
  check(false, "the JS peer finished within 50 s");
  finish(1);
}, 50000).unref();

// ---- fingerprints: 64-bit FNV-1a (docs/wire-format.md, "Fingerprints") ----
const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });
const MASK = (1n << 64n) - 1n;
function fnv1a(bytes, h = 0xcbf29ce484222325n) {
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK;
  return h;
}
function fnv1aValue(v, h) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true); // the uint64, least significant byte first
  return fnv1a(b, h);
}
const fpBitwise = (size, align, kind) =>
  fnv1aValue(BigInt(kind), fnv1aValue(BigInt(align), fnv1aValue(BigInt(size), fnv1a(te.encode("trivial:")))));
const fpString = () => fnv1a(te.encode("string:u32-length"));
const fpVector = (element) => fnv1aValue(element, fnv1a(te.encode("vector:u32-count:")));
const fpAdl = (schemaName) => fnv1a(te.encode("adl:" + schemaName));
const hex16 = (v) => v.toString(16).padStart(16, "0");

// The doc's table of values, recomputed here: if these fail, the doc's algorithm or table is wrong.
check(hex16(fpAdl("shop.order")) === "c4763528ae9e8d18", "doc: fingerprint of the ADL type shop.order", hex16(fpAdl("shop.order")));
check(hex16(fpBitwise(4, 4, 2)) === "8e46c7ecbe22352e", "doc: fingerprint of int32", hex16(fpBitwise(4, 4, 2)));
check(hex16(fpBitwise(8, 8, 1)) === "10a5b31509dfa28d", "doc: fingerprint of double", hex16(fpBitwise(8, 8, 1)));
check(hex16(fpString()) === "f5cf43c5c6158173", "doc: fingerprint of std::string", hex16(fpString()));
check(hex16(fpVector(fpBitwise(4, 4, 2))) === "0d52308b44676e9e", "doc: fingerprint of vector<int32>");
check(hex16(fpVector(fpString())) === "cc0cc2654f975075", "doc: fingerprint of vector<string>");
check(hex16(fpBitwise(8, 4, 3)) === "9ab23bc63ac113c3", "doc: fingerprint of a bitwise {uint16; uint32}");

// ---- the codec bytes (docs/wire-format.md, "Payload: the codecs") ----
class Reader {
  constructor(u8) {
    this.u8 = u8;
    this.dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    this.at = 0;
  }
  need(n) {
    if (this.at + n > this.u8.length) throw new Error(`the payload ends early (${n} bytes wanted at ${this.at} of ${this.u8.length})`);
  }
  u16() { this.need(2); const v = this.dv.getUint16(this.at, true); this.at += 2; return v; }
  u32() { this.need(4); const v = this.dv.getUint32(this.at, true); this.at += 4; return v; }
  i32() { this.need(4); const v = this.dv.getInt32(this.at, true); this.at += 4; return v; }
  f64() { this.need(8); const v = this.dv.getFloat64(this.at, true); this.at += 8; return v; }
  bytes(n) { this.need(n); const b = this.u8.subarray(this.at, this.at + n); this.at += n; return b; }
  string() { return td.decode(this.bytes(this.u32())); } // u32 LE byte count, then UTF-8 bytes
  vector(element) { const n = this.u32(); const out = []; for (let i = 0; i < n; i++) out.push(element(this)); return out; }
  end() { if (this.at !== this.u8.length) throw new Error(`${this.u8.length - this.at} bytes left over`); }
}
class Writer {
  constructor() { this.chunks = []; }
  raw(u8) { this.chunks.push(u8); return this; }
  u32(v) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); return this.raw(b); }
  i32(v) { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, v, true); return this.raw(b); }
  f64(v) { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v, true); return this.raw(b); }
  string(s) { const b = te.encode(s); this.u32(b.length); return this.raw(b); }
  vector(items, element) { this.u32(items.length); for (const x of items) element(this, x); return this; }
  bytes() {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) { out.set(c, at); at += c.length; }
    return out;
  }
}

// interop.order (ADL hooks in agentbus_peer.cpp): string item, int32 quantity, double price, vector<string> tags.
function decodeOrder(u8) {
  const r = new Reader(u8);
  const o = { item: r.string(), quantity: r.i32(), price: r.f64(), tags: r.vector((x) => x.string()) };
  r.end();
  return o;
}
const encodeOrder = (o) =>
  new Writer().string(o.item).i32(o.quantity).f64(o.price).vector(o.tags, (w, s) => w.string(s)).bytes();
// interop.quote_request: string symbol, int32 quantity. interop.quote: string symbol, double price, string note.
function decodeQuoteRequest(u8) {
  const r = new Reader(u8);
  const q = { symbol: r.string(), quantity: r.i32() };
  r.end();
  return q;
}
const encodeQuote = (q) => new Writer().string(q.symbol).f64(q.price).string(q.note).bytes();

// ---- headers ----
const documented = new Set([
  "Agentbus-Schema", "Agentbus-Schema-Version", "Agentbus-Fingerprint", "Agentbus-Event-Id",
  "Agentbus-Correlation-Id", "Agentbus-Source", "Agentbus-Priority", "Agentbus-Deadline",
  "Agentbus-Published", "Agentbus-Origin",
]);
const hget = (msg, key) => (msg.headers ? msg.headers.get(key) : ""); // exact spelling (nats.js default)
const hhas = (msg, key) => (msg.headers ? msg.headers.has(key) : false);
const decimal = /^(0|[1-9][0-9]*)$/;
const nowNs = () => BigInt(Date.now()) * 1000000n;

function schemaHeaders(name, version, fingerprint) {
  const h = natsHeaders();
  h.set("Agentbus-Schema", name);
  h.set("Agentbus-Schema-Version", String(version));
  h.set("Agentbus-Fingerprint", fingerprint);
  return h;
}

// ---- message queues over subscriptions ----
function queue(nc, subject) {
  const q = { items: [], waiters: [] };
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) { check(false, `subscription ${subject}`, String(err)); return; }
      q.items.push(msg);
      for (const w of q.waiters.splice(0)) w();
    },
  });
  q.take = async (pred, ms, what) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = q.items.findIndex(pred);
      if (i >= 0) return q.items.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing on ${subject} within ${ms} ms: waiting for ${what}`);
      await new Promise((resolve) => { q.waiters.push(resolve); setTimeout(resolve, left); });
    }
  };
  return q;
}

try {
  const nc = await connect({ servers: url, name: "nats.js interop peer" });
  console.log(`# nats.js connected to ${url} (server ${nc.info?.version})`);
  const control = queue(nc, "interop.ctl.to_js");
  const events = queue(nc, "interop.to_js.>");
  const text = (msg) => new TextDecoder().decode(msg.data);
  const controlMessage = (word, ms) => control.take((m) => text(m).startsWith(word), ms, `'${word}'`).then(text);

  // Phase 3's server: subscribed now, so that it is there when the requests come.
  let facts = null;
  const requestsSeen = new Set();
  nc.subscribe("interop.rpc.*", {
    callback: (err, msg) => {
      try {
        if (err) throw err;
        answer(msg);
      } catch (e) {
        check(false, `phase 3: answering ${msg?.subject}`, String(e?.stack ?? e));
      }
    },
  });

  function answer(msg) {
    const kind = msg.subject.split(".").pop();
    requestsSeen.add(kind);
    const p = `phase 3 (${kind}): the request`;
    const inbox = /^_INBOX\.(agentbus-[0-9a-f]{16})\.([1-9][0-9]*)$/.exec(msg.reply ?? "");
    check(inbox !== null && inbox[1] === facts?.bridge, `${p} has a reply subject _INBOX.<bridge id>.<n>`, msg.reply);
    check(hget(msg, "Agentbus-Schema") === "interop.quote_request", `${p}'s Agentbus-Schema`, hget(msg, "Agentbus-Schema"));
    check(hget(msg, "Agentbus-Schema-Version") === "1", `${p}'s Agentbus-Schema-Version`);
    check(hget(msg, "Agentbus-Fingerprint") === "000000000badc0de",
      `${p}'s Agentbus-Fingerprint is its declared codec_fingerprint, zero-padded`, hget(msg, "Agentbus-Fingerprint"));
    const correlation = hget(msg, "Agentbus-Correlation-Id");
    check(decimal.test(correlation) && correlation !== "0", `${p} carries its correlation id`, correlation);
    check(decimal.test(hget(msg, "Agentbus-Event-Id")), `${p} carries its event id`);
    check(hget(msg, "Agentbus-Origin") === facts?.bridge, `${p}'s Agentbus-Origin is the requesting bridge`);
    const source = hget(msg, "Agentbus-Source");
    const traceparent = hget(msg, "traceparent");
    check(source === "desk", `${p}'s Agentbus-Source`, source);
    check(traceparent === rpcTraceparent, `${p}'s traceparent`, traceparent);
    // No TTL on the request event: the deadline is the bridge's nats_request_options::timeout (20 s here).
    const deadline = hget(msg, "Agentbus-Deadline");
    const left = decimal.test(deadline) ? Number(BigInt(deadline) - nowNs()) / 1e6 : NaN;
    check(left > 10000 && left <= 20500, `${p}'s Agentbus-Deadline is the bridge's 20 s request timeout`, `${left} ms left`);
    const req = decodeQuoteRequest(msg.data);
    const quoteHeaders = (fp) => schemaHeaders("interop.quote", 1, fp);
    if (kind === "quote") {
      check(req.symbol === "ACME" && req.quantity === 4, `${p} decodes (ACME, 4)`, JSON.stringify(req));
      msg.respond(encodeQuote({ symbol: req.symbol, price: req.quantity * 2.5, note: `${source}|${traceparent}` }), {
        headers: quoteHeaders(hex16(fpAdl("interop.quote"))),
      });
    } else if (kind === "reject" || kind === "unknown") {
      // An error reply: no payload, Agentbus-Error (a request_errc name), Agentbus-Error-Detail.
      const h = natsHeaders();
      h.set("Agentbus-Error", kind === "reject" ? "rejected" : "quota_exceeded");
      h.set("Agentbus-Error-Detail", `no quotes for ${req.symbol}`);
      msg.respond(new Uint8Array(0), { headers: h });
    } else if (kind === "badreply") {
      msg.respond(encodeQuote({ symbol: req.symbol, price: 1, note: "" }), { headers: quoteHeaders(wrongFingerprint) });
    } else {
      check(false, `${p}: a request on an unexpected subject`, msg.subject);
    }
  }

  await nc.flush();
  nc.publish("interop.ctl.to_cpp", te.encode("js-ready"));
  await nc.flush();

  // ---- 1. the events agentbus exported ----
  const sent = await controlMessage("events-sent ", 20000);
  facts = JSON.parse(sent.slice("events-sent ".length));
  console.log(`# agentbus says: ${JSON.stringify(facts)}`);
  check(/^agentbus-[0-9a-f]{16}$/.test(facts.bridge), "phase 1: the bridge id has the documented form", facts.bridge);

  {
    const msg = await events.take((m) => m.subject === "interop.to_js.orders.eu", 10000, "the order");
    const p = "phase 1 (order)";
    check(msg.headers !== undefined, `${p}: the message has headers (HMSG)`);
    check(!msg.reply, `${p}: an event has no reply subject`);
    check(hget(msg, "Agentbus-Schema") === "interop.order", `${p}: Agentbus-Schema`, hget(msg, "Agentbus-Schema"));
    check(hget(msg, "Agentbus-Schema-Version") === "1", `${p}: Agentbus-Schema-Version defaults to 1`);
    const fp = hget(msg, "Agentbus-Fingerprint");
    check(fp === hex16(fpAdl("interop.order")), `${p}: Agentbus-Fingerprint is fnv1a("adl:interop.order")`,
      `${fp} vs ${hex16(fpAdl("interop.order"))}`);
    check(hget(msg, "Agentbus-Event-Id") === facts.order_event_id, `${p}: Agentbus-Event-Id is the event's id`,
      `${hget(msg, "Agentbus-Event-Id")} vs ${facts.order_event_id}`);
    check(hget(msg, "Agentbus-Correlation-Id") === "42", `${p}: Agentbus-Correlation-Id`);
    check(hget(msg, "Agentbus-Source") === "planner", `${p}: Agentbus-Source`);
    check(hget(msg, "Agentbus-Priority") === "high", `${p}: Agentbus-Priority`);
    check(hget(msg, "Agentbus-Origin") === facts.bridge, `${p}: Agentbus-Origin is the bridge id`);
    check(hget(msg, "traceparent") === outTraceparent, `${p}: traceparent`, hget(msg, "traceparent"));
    check(hget(msg, "X-Interop") === "phase-1", `${p}: the event's own header X-Interop, verbatim`);
    const published = hget(msg, "Agentbus-Published");
    check(published === facts.order_published_ns, `${p}: Agentbus-Published is the publish time in Unix ns`,
      `${published} vs ${facts.order_published_ns}`);
    const skewMs = decimal.test(published) ? Math.abs(Number(nowNs() - BigInt(published)) / 1e6) : NaN;
    check(skewMs < 60000, `${p}: Agentbus-Published is close to this clock`, `${skewMs} ms`);
    const deadline = hget(msg, "Agentbus-Deadline");
    const ttlMs = decimal.test(deadline) && decimal.test(published) ? Number(BigInt(deadline) - BigInt(published)) / 1e6 : NaN;
    check(ttlMs > 29000 && ttlMs <= 30500, `${p}: Agentbus-Deadline is Published + the 30 s TTL`, `${ttlMs} ms`);
    const keys = msg.headers ? msg.headers.keys() : [];
    const extra = keys.filter((k) => !documented.has(k) && k !== "traceparent" && k !== "X-Interop");
    check(extra.length === 0, `${p}: no header beyond the documented ones and the event's own`, extra.join(","));
    try {
      const o = decodeOrder(msg.data);
      check(o.item === "apple" && o.quantity === 3 && o.price === 0.5 && JSON.stringify(o.tags) === '["red","fresh"]',
        `${p}: payload decoded (apple, 3, 0.5, [red, fresh])`, JSON.stringify(o));
    } catch (e) {
      check(false, `${p}: payload decodes`, String(e));
    }
  }
  {
    const msg = await events.take((m) => m.subject === "interop.to_js.ticks.x", 10000, "the tick");
    const p = "phase 1 (tick)";
    check(hget(msg, "Agentbus-Schema") === "interop.tick", `${p}: Agentbus-Schema`);
    check(hget(msg, "Agentbus-Schema-Version") === "2", `${p}: Agentbus-Schema-Version`, hget(msg, "Agentbus-Schema-Version"));
    check(hget(msg, "Agentbus-Fingerprint") === hex16(fpBitwise(8, 4, 3)), `${p}: Agentbus-Fingerprint is bitwise(8, 4, other)`,
      hget(msg, "Agentbus-Fingerprint"));
    check(hget(msg, "Agentbus-Event-Id") === facts.tick_event_id, `${p}: Agentbus-Event-Id`);
    // The doc: Agentbus-Priority is written when not normal; a reader takes anything but exactly
    // "high" or "low" (absent too) as normal.
    const prio = hget(msg, "Agentbus-Priority");
    check(!hhas(msg, "Agentbus-Priority"), `${p}: no Agentbus-Priority header for normal priority`,
      JSON.stringify(msg.headers?.values("Agentbus-Priority")));
    check((prio === "high" || prio === "low" ? prio : "normal") === "normal", `${p}: priority reads as normal`);
    check(!hhas(msg, "Agentbus-Correlation-Id") && !hhas(msg, "Agentbus-Source") && !hhas(msg, "Agentbus-Deadline"),
      `${p}: no correlation id, source or deadline header when the event has none`);
    check(decimal.test(hget(msg, "Agentbus-Published")), `${p}: Agentbus-Published`);
    const b = msg.data;
    check(b.length === 8, `${p}: payload is the 8-byte struct`, `${b.length} bytes`);
    if (b.length === 8) {
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      check(dv.getUint16(0, true) === 7, `${p}: venue (uint16 LE at 0)`, String(dv.getUint16(0, true)));
      check(b[2] === 0 && b[3] === 0, `${p}: padding bytes 2..3 are zero`);
      check(dv.getUint32(4, true) === 0x01020304, `${p}: seq (uint32 LE at 4)`, dv.getUint32(4, true).toString(16));
    }
  }

  // ---- 2. events for the agentbus import ----
  {
    const orderFp = hex16(fpAdl("interop.order"));
    const a = schemaHeaders("interop.order", 1, orderFp);
    a.set("Agentbus-Source", "js-agent");
    a.set("traceparent", inTraceparent);
    nc.publish("interop.from_js.orders.us", encodeOrder({ item: "pear", quantity: 7, price: 1.25, tags: ["green", "ripe"] }),
      { headers: a });

    check(wrongFingerprint !== orderFp, "phase 2: the wrong fingerprint differs from the right one");
    const bad = schemaHeaders("interop.order", 1, wrongFingerprint);
    bad.set("Agentbus-Source", "js-agent");
    nc.publish("interop.from_js.orders.bad", encodeOrder({ item: "pear", quantity: 7, price: 1.25, tags: [] }), { headers: bad });

    // The doc: the fingerprint is read as hex in either case.
    const c = schemaHeaders("interop.order", 1, orderFp.toUpperCase());
    c.set("Agentbus-Source", "js-agent/2");
    c.set("Agentbus-Priority", "high");
    c.set("Agentbus-Correlation-Id", "77");
    c.set("Agentbus-Deadline", String(nowNs() + 30000000000n));
    c.set("Agentbus-Origin", "js-peer");
    c.set("Agentbus-Event-Id", "5");
    c.append("X-Trace", "a");
    c.append("X-Trace", "b");
    c.set("agentbus-custom", "dropped on import");
    nc.publish("interop.from_js.orders.last", encodeOrder({ item: "pl\u00fcm", quantity: -2, price: -1e300, tags: [] }),
      { headers: c });
    await nc.flush();
    nc.publish("interop.ctl.to_cpp", te.encode("published"));
    await nc.flush();
    console.log("# published A (interop.from_js.orders.us), B (wrong fingerprint), C (interop.from_js.orders.last)");
  }

  // ---- 3. requests: answered by the callback above until the agentbus peer is done ----
  const done = await controlMessage("done ", 40000);
  console.log(`# agentbus peer says: ${done} (its failures)`);
  check(["quote", "reject", "unknown", "badreply"].every((k) => requestsSeen.has(k)) && requestsSeen.size === 4,
    "phase 3: the four requests came", [...requestsSeen].join(","));
  await nc.drain();
  finish(failed === 0 ? 0 : 1);
} catch (e) {
  check(false, "the JS peer ran to the end", String(e?.stack ?? e));
  finish(1);
}
