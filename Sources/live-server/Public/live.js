// live.js: the browser client for live-server (subprotocol live.v1.json).
// Plain modern JavaScript: no build step, no dependencies. Load it as a module:
//
//   import { LiveClient } from "/live.js";
//   const live = new LiveClient(`ws://${location.host}/ws?name=ada`);
//   live.addEventListener("state", (e) => console.log(e.detail.state));
//   await live.join("room:lobby", (body, message) => console.log(body));
//   await live.publish("room:lobby", { text: "hello" });
//
// Requests (join, leave, publish, echo, who, count) return promises settled by the server's
// `reply` or `error` for their `ref`. The client reconnects with exponential backoff and
// jitter, and joins its topics again after a reconnect.

export class LiveClient extends EventTarget {
  constructor(url, { minDelay = 250, maxDelay = 10000, requestTimeout = 10000 } = {}) {
    super();
    this.url = url;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.requestTimeout = requestTimeout;
    this.topics = new Map(); // topic -> handler(body, message)
    this.pending = new Map(); // ref -> { resolve, reject, timer }
    this.nextRef = 1;
    this.attempt = 0;
    this.state = "closed";
    this.stopped = false;
    this.socket = null;
    this.connect();
  }

  /** Opens the connection (done by the constructor; again after close()). */
  connect() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    this.setState("connecting");
    const socket = new WebSocket(this.url, "live.v1.json");
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState("open");
      for (const topic of this.topics.keys()) {
        this.request({ type: "join", topic }).catch((err) => this.fail(err));
      }
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      for (const [ref, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new Error("disconnected"));
        this.pending.delete(ref);
      }
      this.setState("closed", { code: event.code, reason: event.reason });
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  /** Closes the connection for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "bye");
  }

  /** Subscribes to a topic; the handler gets each message's body (and the message). */
  join(topic, handler) {
    this.topics.set(topic, handler);
    return this.request({ type: "join", topic });
  }

  leave(topic) {
    this.topics.delete(topic);
    return this.request({ type: "leave", topic });
  }

  /** Sends body (any JSON value) to every subscriber of topic. */
  publish(topic, body) {
    return this.request({ type: "publish", topic, body });
  }

  /** Sessions subscribed to topic, at most the server's who limit of them (needs presence
   *  on the server); count(topic) gives how many there are. */
  async who(topic) {
    const reply = await this.request({ type: "who", topic });
    return reply.body || [];
  }

  /** How many sessions are subscribed to topic (needs presence on the server). */
  async count(topic) {
    const reply = await this.request({ type: "count", topic });
    return reply.body ? reply.body.count : 0;
  }

  /** A round trip through the server; resolves with the echoed message. */
  echo(body) {
    return this.request({ type: "echo", body });
  }

  request(message) {
    return new Promise((resolve, reject) => {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected"));
        return;
      }
      const ref = String(this.nextRef++);
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new Error("timed out"));
      }, this.requestTimeout);
      this.pending.set(ref, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...message, ref }));
    });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (err) {
      this.fail(err);
      return;
    }
    const waiting = message.ref && this.pending.get(message.ref);
    if (waiting) {
      this.pending.delete(message.ref);
      clearTimeout(waiting.timer);
      if (message.type === "error") {
        waiting.reject(new Error((message.body && message.body.reason) || "error"));
      } else {
        waiting.resolve(message);
      }
      return;
    }
    if (message.type === "message") {
      const handler = this.topics.get(message.topic);
      if (handler) handler(message.body, message);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  scheduleReconnect() {
    // Exponential backoff with jitter: half the delay fixed, half random, so that many
    // clients dropped at once do not come back at once.
    const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt++;
    this.setState("waiting", { delay: Math.round(delay), attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  fail(error) {
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }
}
