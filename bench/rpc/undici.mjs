// bench/rpc/undici.mjs URL N CONCURRENCY - Node's undici doing what
// bench/rpc/client.lua does: N GETs, CONCURRENCY at a time, over a Pool of
// CONCURRENCY keep-alive connections (pipelining 1: one request per
// connection at a time, as ours). Prints one RESULT line; the client's CPU
// comes from process.cpuUsage() around the timed part (user + system).
import { Pool } from "undici";

const [url, nArg, concArg] = process.argv.slice(2);
const N = Number(nArg), CONC = Number(concArg);
const u = new URL(url);
const pool = new Pool(u.origin, { connections: CONC, pipelining: 1 });

async function get() {
  const { statusCode, body } = await pool.request({ path: u.pathname + u.search, method: "GET" });
  const text = await body.text();
  if (statusCode !== 200 || text !== "ok") throw new Error(`unexpected ${statusCode} ${text}`);
}

async function run(n) {
  let next = 0;
  const worker = async () => { while (next < n) { next++; await get(); } };
  await Promise.all(Array.from({ length: CONC }, worker));
}

await run(CONC * 20); // warm: connections open, JIT warm
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await run(N);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuS = (cpu.user + cpu.system) / 1e6;
console.log(`RESULT client=node-undici n=${N} conc=${CONC} secs=${secs.toFixed(3)} rps=${(N / secs).toFixed(0)} ` +
  `cpu_s=${cpuS.toFixed(3)} cpu_us_per_req=${(cpuS * 1e6 / N).toFixed(2)}`);
await pool.close();
