// bench/tracing/requests.js PORT N [PATH]: N GETs over 4 keep-alive
// connections, 4 in flight; prints "done N" and exits (1 on an error).
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const port = +process.argv[2], n = +process.argv[3], path = process.argv[4] || '/hello?name=x';
let done = 0, started = 0;
function one() {
  if (started >= n) return;
  started++;
  http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
    res.resume();
    res.on('end', () => {
      done++;
      if (done === n) { console.log('done ' + done); process.exit(0); }
      one();
    });
  }).on('error', (e) => { console.error(e.message); process.exit(1); });
}
for (let i = 0; i < 4; i++) one();
