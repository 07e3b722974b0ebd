// Preloaded into Portkey's gateway (`node --require ./force-localhost.cjs …/start-server.js`).
//
// Portkey's open-source gateway has no host option: it calls `server.listen(port, undefined)`,
// which listens on every interface, and it ignores arguments it does not know (even `--help`
// starts the server). A test peer must listen on 127.0.0.1 only, so every TCP listen in this
// process is forced onto 127.0.0.1 here, before the gateway's code runs.
//
// With FORCE_LOCALHOST_REPORT=<file>, the address a server actually bound (`--port=0` picks a
// free port) is written there as JSON {"address", "port"} once it listens, atomically (a temp
// file renamed), so the test reads the port without racing the gateway's console output.
'use strict';

const fs = require('fs');
const net = require('net');

const HOST = '127.0.0.1';
const original = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));
}

function localOnly(args) {
  const callback = args.find((a) => typeof a === 'function');
  const first = args[0];
  if (first !== null && typeof first === 'object' && !(first instanceof net.Server)) {
    if (first.path !== undefined || first.fd !== undefined || first._handle !== undefined) {
      return args; // a Unix socket or an inherited handle: no network interface involved
    }
    return [{ ...first, host: HOST }, ...(callback ? [callback] : [])];
  }
  if (first === undefined || typeof first === 'function' || isPort(first)) {
    const port = isPort(first) ? Number(first) : 0;
    return [{ port, host: HOST }, ...(callback ? [callback] : [])];
  }
  return args; // a pipe name or a handle
}

function report(server) {
  const target = process.env.FORCE_LOCALHOST_REPORT;
  const address = server.address();
  if (!target || address === null || typeof address !== 'object') {
    return;
  }
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ address: address.address, port: address.port }));
  fs.renameSync(tmp, target);
}

net.Server.prototype.listen = function listen(...args) {
  this.once('listening', () => report(this));
  return original.apply(this, localOnly(args));
};
