// spec/support/otlp_receiver.js: a stand-in OpenTelemetry collector for the
// specs (no collector binary is installable here). It decodes what we send
// with the official definitions: protobufjs code generated from
// opentelemetry-proto, shipped in @opentelemetry/otlp-transformer (pinned in
// spec/js/package.json).
//
//   node spec/support/otlp_receiver.js     prints "port <n>" once listening on 127.0.0.1
//
//   POST /v1/traces | /v1/metrics | /v1/logs   (application/x-protobuf, gzip or not) -> 200,
//        the decoded Export*ServiceRequest stored
//   GET  /received?signal=traces   -> { requests, attempts, count, gzipped, items: [...] }: every span
//        (log record, metric) received, flattened, with `resource` and `scope`, ids as hex,
//        attributes as an object `attrs` { key: value } beside the raw list
//   POST /fault?status=503&count=2 -> the next 2 export requests are answered 503
//   POST /partial?signal=traces&rejected=2&message=why -> the next export request of that signal is
//        stored and answered 200 with Export*ServiceResponse.partial_success { rejected_<items>, error_message }
//   POST /decode/<Span|LogRecord|Resource|Metric>  (bytes) -> that one message as JSON
//   POST /reset                    -> forget everything received
// OTLP_RECEIVER_DISCARD=1 (benchmarks): decode, count the items, keep nothing
// OTLP_RECEIVER_DISCARD=count (benchmarks): count requests and bytes only
//   (GET /received then answers { requests, attempts, count, items: [] }).
'use strict';
const http = require('http');
const zlib = require('zlib');
const path = require('path');
const { createRequire } = require('module');

const req = createRequire(path.join(__dirname, '..', 'js', 'package.json'));
const root = req('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const p = root.opentelemetry.proto;

const REQUESTS = {
  traces: p.collector.trace.v1.ExportTraceServiceRequest,
  metrics: p.collector.metrics.v1.ExportMetricsServiceRequest,
  logs: p.collector.logs.v1.ExportLogsServiceRequest,
};
const MESSAGES = {
  Span: p.trace.v1.Span,
  LogRecord: p.logs.v1.LogRecord,
  Resource: p.resource.v1.Resource,
  Metric: p.metrics.v1.Metric,
};
const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

// protobufjs' JSON-able object: 64-bit integers as decimal strings (exact),
// ids as hex, enums as numbers.
function toJson(type, msg) {
  const o = type.toObject(msg, { longs: String, bytes: String, enums: Number, defaults: false, arrays: true });
  return fixIds(o);
}

function fixIds(v) {
  if (Array.isArray(v)) return v.map(fixIds);
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      if (ID_FIELDS.has(k) && typeof v[k] === 'string') v[k] = Buffer.from(v[k], 'base64').toString('hex');
      else v[k] = fixIds(v[k]);
    }
    if (Array.isArray(v.attributes)) v.attrs = attrs(v.attributes);
  }
  return v;
}

function anyValue(a) {
  if (!a) return null;
  if ('stringValue' in a) return a.stringValue;
  if ('boolValue' in a) return a.boolValue;
  if ('intValue' in a) return Number(a.intValue);
  if ('doubleValue' in a) return a.doubleValue;
  if ('arrayValue' in a) return (a.arrayValue.values || []).map(anyValue);
  if ('kvlistValue' in a) return attrs(a.kvlistValue.values || []);
  if ('bytesValue' in a) return a.bytesValue;
  return null;
}

function attrs(list) {
  const out = {};
  for (const kv of list) out[kv.key] = anyValue(kv.value);
  return out;
}

const ITEMS = {
  traces: ['resourceSpans', 'scopeSpans', 'spans'],
  metrics: ['resourceMetrics', 'scopeMetrics', 'metrics'],
  logs: ['resourceLogs', 'scopeLogs', 'logRecords'],
};

const DISCARD = process.env.OTLP_RECEIVER_DISCARD === '1' || process.env.OTLP_RECEIVER_DISCARD === 'count';
// 'count' (benchmarks, a collector's cost left out): not even decoded, only
// requests and bytes counted
const COUNT_ONLY = process.env.OTLP_RECEIVER_DISCARD === 'count';
const bytes = { traces: 0, metrics: 0, logs: 0 };
const received = { traces: [], metrics: [], logs: [] };
const counts = { traces: 0, metrics: 0, logs: 0 };
const gzipped = { traces: 0, metrics: 0, logs: 0 };
const attempts = { traces: 0, metrics: 0, logs: 0 };
let fault = { status: 0, count: 0 };
let partial = null; // { signal, rejected, message }: the next answer of that signal
const RESPONSES = {
  traces: [p.collector.trace.v1.ExportTraceServiceResponse, 'rejectedSpans'],
  metrics: [p.collector.metrics.v1.ExportMetricsServiceResponse, 'rejectedDataPoints'],
  logs: [p.collector.logs.v1.ExportLogsServiceResponse, 'rejectedLogRecords'],
};

function flatten(signal) {
  const [rk, sk, ik] = ITEMS[signal];
  const items = [];
  for (const r of received[signal]) {
    for (const rs of r[rk] || []) {
      const resource = (rs.resource && rs.resource.attrs) || {};
      for (const ss of rs[sk] || []) {
        for (const it of ss[ik] || []) items.push(Object.assign({ resource, scope: ss.scope || {} }, it));
      }
    }
  }
  return items;
}

function send(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const server = http.createServer((rq, res) => {
  const chunks = [];
  rq.on('data', (c) => chunks.push(c));
  rq.on('end', () => {
    let body = Buffer.concat(chunks);
    const url = new URL(rq.url, 'http://x');
    try {
      const signal = url.pathname.startsWith('/v1/') && url.pathname.slice(4);
      if (rq.method === 'POST' && REQUESTS[signal]) {
        attempts[signal]++;
        if (fault.count > 0) {
          fault.count--;
          return send(res, fault.status, 'fault injected');
        }
        if (!/^application\/x-protobuf/.test(rq.headers['content-type'] || '')) {
          return send(res, 415, 'expected application/x-protobuf');
        }
        const type = REQUESTS[signal];
        bytes[signal] += body.length;
        if (COUNT_ONLY) {
          res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
          return res.end();
        }
        if (rq.headers['content-encoding'] === 'gzip') {
          body = zlib.gunzipSync(body);
          gzipped[signal]++;
        }
        const msg = type.decode(body);
        const [rk, sk, ik] = ITEMS[signal];
        for (const rs of msg[rk] || []) for (const ss of rs[sk] || []) counts[signal] += (ss[ik] || []).length;
        if (!DISCARD) received[signal].push(toJson(type, msg));
        if (partial && partial.signal === signal) {
          const [rtype, field] = RESPONSES[signal];
          const ps = { errorMessage: partial.message };
          ps[field] = partial.rejected;
          const out = Buffer.from(rtype.encode({ partialSuccess: ps }).finish());
          partial = null;
          res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': out.length });
          return res.end(out);
        }
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
        return res.end(); // an empty Export*ServiceResponse: all accepted
      }
      if (rq.method === 'GET' && url.pathname === '/received') {
        const s = url.searchParams.get('signal');
        if (!received[s]) return send(res, 400, 'signal: traces | metrics | logs');
        return send(res, 200, { requests: received[s].length, attempts: attempts[s], count: counts[s], gzipped: gzipped[s],
          bytes: bytes[s], items: flatten(s) });
      }
      if (rq.method === 'POST' && url.pathname === '/partial') {
        const signal = url.searchParams.get('signal') || 'traces';
        if (!RESPONSES[signal]) return send(res, 400, 'signal: traces | metrics | logs');
        partial = { signal, rejected: Number(url.searchParams.get('rejected') || 1), message: url.searchParams.get('message') || '' };
        return send(res, 200, partial);
      }
      if (rq.method === 'POST' && url.pathname === '/fault') {
        fault = { status: Number(url.searchParams.get('status') || 503), count: Number(url.searchParams.get('count') || 1) };
        return send(res, 200, fault);
      }
      if (rq.method === 'POST' && url.pathname.startsWith('/decode/')) {
        const type = MESSAGES[url.pathname.slice(8)];
        if (!type) return send(res, 404, 'no such message type');
        return send(res, 200, toJson(type, type.decode(body)));
      }
      if (rq.method === 'POST' && url.pathname === '/reset') {
        for (const k of Object.keys(received)) { received[k] = []; attempts[k] = 0; counts[k] = 0; gzipped[k] = 0; bytes[k] = 0; }
        fault = { status: 0, count: 0 };
        return send(res, 200, {});
      }
      return send(res, 404, 'not found');
    } catch (e) {
      return send(res, 400, 'cannot decode: ' + e.message);
    }
  });
});

server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write('port ' + server.address().port + '\n');
});
process.on('SIGTERM', () => process.exit(0));
