// An echo server and its client on Node.js's own event loop (libuv: epoll,
// accept4, non-blocking reads and writes), standard library only.
//
//   node node-echo.js server SOCKET
//   node node-echo.js check SOCKET CONNECTIONS MIB
//       half the connections stream MIB MiB in random-sized writes and
//       compare the echo's sha256, the other half do 2000 small round trips
//   node node-echo.js bench SOCKET ROUNDS
//       one connection, ROUNDS small round trips
'use strict';
const net = require('net');
const crypto = require('crypto');

function server(path) {
	const srv = net.createServer((sock) => sock.pipe(sock));
	srv.listen(path);
	process.on('SIGTERM', () => srv.close(() => process.exit(0)));
}

function stream(path, mib) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(path);
		const sent = crypto.createHash('sha256');
		const received = crypto.createHash('sha256');
		let left = mib << 20;
		let echoed = 0;
		sock.on('data', (d) => {
			received.update(d);
			echoed += d.length;
			if (echoed === mib << 20) sock.end();
		});
		sock.on('close', () => {
			const want = sent.digest('hex');
			const got = received.digest('hex');
			if (echoed === mib << 20 && want === got) resolve();
			else reject(new Error(`stream: ${echoed} bytes echoed, sha256 ${got} != ${want}`));
		});
		sock.on('error', reject);
		function pump() {
			while (left > 0) {
				const chunk = crypto.randomBytes(Math.min(left, 1 + crypto.randomInt(256 << 10)));
				left -= chunk.length;
				sent.update(chunk);
				if (!sock.write(chunk)) return sock.once('drain', pump);
			}
		}
		pump();
	});
}

function pingpong(path, rounds) {
	return new Promise((resolve, reject) => {
		const sock = net.connect(path);
		let pending = '';
		let done = 0;
		const message = (i) => `ping ${i} ${'x'.repeat(i % 50)}\n`;
		sock.setEncoding('latin1');
		sock.on('connect', () => sock.write(message(0)));
		sock.on('data', (d) => {
			pending += d;
			const want = message(done);
			if (pending.length < want.length) return;
			if (pending !== want) return reject(new Error(`round ${done}: got ${JSON.stringify(pending)}`));
			pending = '';
			if (++done === rounds) return sock.end(resolve);
			sock.write(message(done));
		});
		sock.on('error', reject);
	});
}

async function check(path, connections, mib) {
	const all = [];
	for (let i = 0; i < connections; i++)
		all.push(i % 2 ? pingpong(path, 2000) : stream(path, mib));
	await Promise.all(all);
	console.log('ok');
}

function die(e) {
	console.error(e.message);
	process.exit(1);
}

const [mode, path, a, b] = process.argv.slice(2);
if (mode === 'server') server(path);
else if (mode === 'check') check(path, Number(a), Number(b)).catch(die);
else if (mode === 'bench') pingpong(path, Number(a)).catch(die);
else die(new Error('usage: node-echo.js server|check|bench SOCKET ...'));
