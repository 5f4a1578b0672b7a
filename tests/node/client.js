// A msgpack-rpc client with `msgpack5rpc` from npm (an independent implementation of the
// spec): authenticates, calls functions and shared objects, and counts from 5 processes.
// usage: node client.js SCENARIO HOST PORT KEY
const net = require('net');
const crypto = require('crypto');
const { fork } = require('child_process');
const Session = require('msgpack5rpc');

const [scenario, host, port, key] = process.argv.slice(2);

function connect() {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host, () => {
      const session = new Session();
      session.attach(socket, socket);
      resolve({ session, socket });
    });
    socket.on('error', reject);
  });
}

function call(session, method, params) {
  return new Promise((resolve, reject) => {
    session.request(method, params, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

async function authenticated() {
  const c = await connect();
  const nonce = await call(c.session, 'monogusa.challenge', []);
  const mac = crypto.createHmac('sha256', key);
  mac.update(Buffer.from('monogusa msgpack proof'));
  mac.update(Buffer.from(nonce));
  await call(c.session, 'monogusa.prove', [mac.digest()]);
  return c;
}

async function main() {
  if (scenario === 'calls') {
    const c = await authenticated();
    console.log('echo:', await call(c.session, 'echo', ['hello']));
    console.log('add:', await call(c.session, 'add', [2, 3]));
    const results = await Promise.all([...Array(50).keys()].map((i) => call(c.session, 'add', [i, 1])));
    console.log('pipelined ok:', results.every((r, i) => r === i + 1));
    try {
      await call(c.session, 'nope', []);
    } catch (e) {
      console.log('error:', e[0]);
    }
    c.socket.end();
  } else if (scenario === 'counter') {
    const children = [...Array(5).keys()].map(() => fork(__filename, ['worker', host, port, key]));
    await Promise.all(children.map((child) => new Promise((r) => child.on('exit', r))));
    const c = await authenticated();
    console.log('count:', await call(c.session, 'counter.get', ['node-hits']));
    c.socket.end();
  } else if (scenario === 'worker') {
    const c = await authenticated();
    for (let i = 0; i < 1000; i++) {
      await call(c.session, 'counter.add', ['node-hits', 1]);
    }
    c.socket.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
