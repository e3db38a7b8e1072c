#!/usr/bin/env node
// A Node `ws` server speaking the live-server conventions, as a peer for bench/race.
//
//   NODE_PATH=/usr/share/nodejs node server.js [--host 127.0.0.1] [--port 8080]
//
// Prints "PORT <n>" once listening. JSON text frames on /ws:
//   {"type":"join","topic":T,"ref":R}             subscribe to T
//   {"type":"leave","topic":T,"ref":R}            unsubscribe from T
//   {"type":"publish","topic":T,"body":B,"ref":R} every subscriber of T gets
//                                                 {"type":"message","topic":T,"body":B}
//   {"type":"echo",...}                           comes back unchanged
// With a non-empty ref the sender then gets {"type":"reply","ref":R,"topic":T}, or
// {"type":"error","ref":R,"body":{"reason":"..."}}.
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '8080'));

/** topic -> Set of sockets subscribed to it */
const topics = new Map();

function join(ws, topic) {
  let subscribers = topics.get(topic);
  if (subscribers === undefined) {
    subscribers = new Set();
    topics.set(topic, subscribers);
  }
  subscribers.add(ws);
  ws.topics.add(topic);
}

function leave(ws, topic) {
  const subscribers = topics.get(topic);
  if (subscribers !== undefined) {
    subscribers.delete(ws);
    if (subscribers.size === 0) topics.delete(topic);
  }
  ws.topics.delete(topic);
}

function publish(topic, body) {
  const subscribers = topics.get(topic);
  if (subscribers === undefined) return;
  const frame = JSON.stringify({ type: 'message', topic, body });
  for (const ws of subscribers) {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame);
  }
}

function onMessage(ws, data, isBinary) {
  if (isBinary) return;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return;
  }
  if (msg === null || typeof msg !== 'object') return;
  const topic = typeof msg.topic === 'string' ? msg.topic : '';
  const ref = typeof msg.ref === 'string' ? msg.ref : '';
  const fail = (reason) => {
    if (ref) ws.send(JSON.stringify({ type: 'error', ref, body: { reason } }));
  };
  switch (msg.type) {
    case 'echo':
      ws.send(data, { binary: false });
      return;
    case 'join':
      if (!topic) return fail('missing topic');
      join(ws, topic);
      break;
    case 'leave':
      if (!topic) return fail('missing topic');
      leave(ws, topic);
      break;
    case 'publish':
      if (!topic) return fail('missing topic');
      publish(topic, msg.body === undefined ? null : msg.body);
      break;
    default:
      return fail('unknown type');
  }
  if (ref) ws.send(JSON.stringify({ type: 'reply', ref, topic }));
}

const wss = new WebSocketServer({ host, port, path: '/ws' });

wss.on('connection', (ws) => {
  ws.topics = new Set();
  ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
  ws.on('close', () => {
    for (const topic of ws.topics) leave(ws, topic);
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
});

wss.on('error', (err) => {
  console.error(`node-ws: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
