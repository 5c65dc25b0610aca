// server.js -- a WebSocket echo server on Node with npm's `ws`, the peer
// bench/run_ws_bench.py measures sockserv-ws-echo against.
//
//   node server.js PORT      (0: any free port; prints "listening on PORT")
//
// Binary stays binary and text stays text, every message echoed whole;
// no compression (perMessageDeflate off, as sockserv negotiates none).
"use strict";
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  perMessageDeflate: false,
  maxPayload: 16 * 1024 * 1024,
});
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on("listening", () => {
  console.log(`listening on ${wss.address().port}`);
});
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
