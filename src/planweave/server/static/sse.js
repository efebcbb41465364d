// Server-Sent Events over fetch(). EventSource cannot send an Authorization header, so the
// stream is read from a ReadableStream and parsed here; on a drop it reconnects with
// Last-Event-ID set to the last id seen, so no event is lost or repeated.

import { authHeaders } from "./api.js";

/** Parse SSE text incrementally: feed(chunk) calls onMessage({event, data, id}) per message. */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
    this.lastId = null;
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  feed(chunk) {
    this.buffer += chunk;
    // A line ends at \r\n, \n or \r; keep a trailing \r in case \n follows in the next chunk.
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.buffer);
      if (!match) break;
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) {
        if (this.id !== null) this.lastId = this.id;
        this.onMessage({ event: this.event || "message", data: this.data.join("\n"), id: this.id ?? this.lastId });
      } else if (this.id !== null) {
        this.lastId = this.id;
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}

/**
 * Follow an event stream until close() is called.
 *
 * options: path, lastEventId (resume after it; a function is asked at each connect), onEvent(obj), onState(state) with state one of
 * "connecting" | "live" | "reconnecting" | "closed" | "error", shouldReconnect() -> bool,
 * onError(err) for answers that will not get better by retrying (401, 403, 404).
 */
export function followEvents({ path, lastEventId = null, onEvent, onState = () => {}, shouldReconnect = () => true, onError = () => {} }) {
  let controller = null;
  let closed = false;
  let lastId = typeof lastEventId === "function" ? null : lastEventId;
  let delayMs = 500;
  let timer = null;
  let running = false;

  const setState = (state) => {
    try {
      onState(state);
    } catch (exc) {
      console.error(exc);
    }
  };

  async function connectOnce() {
    controller = new AbortController();
    const headers = authHeaders({ Accept: "text/event-stream" });
    const resumeAfter = typeof lastEventId === "function" ? lastEventId() : lastId;
    if (resumeAfter !== null && resumeAfter !== undefined && resumeAfter !== "") headers["Last-Event-ID"] = String(resumeAfter);
    const response = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
    if (!response.ok || !response.body) {
      const err = new Error(`event stream answered HTTP ${response.status}`);
      err.status = response.status;
      throw err;
    }
    setState("live");
    const parser = new SseParser((msg) => {
      delayMs = 500; // the stream works: after a drop, reconnect quickly again
      if (msg.id !== null && msg.id !== undefined) lastId = msg.id;
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        data = { type: msg.event, raw: msg.data };
      }
      if (data && typeof data === "object" && !data.type) data.type = msg.event;
      try {
        onEvent(data);
      } catch (exc) {
        console.error(exc);
      }
    });
    if (lastId !== null) parser.lastId = lastId;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
    if (parser.retryMs) delayMs = parser.retryMs;
  }

  async function loop() {
    if (running) return;
    running = true;
    try {
      setState("connecting");
      while (!closed) {
        try {
          await connectOnce();
        } catch (exc) {
          if (closed || (exc && exc.name === "AbortError")) break;
          if (exc && [401, 403, 404, 410].includes(exc.status)) {
            setState("error");
            onError(exc);
            return;
          }
        }
        if (closed) break;
        if (!shouldReconnect()) {
          setState("closed");
          return;
        }
        setState("reconnecting");
        await new Promise((resolve) => {
          timer = setTimeout(resolve, delayMs);
        });
        delayMs = Math.min(delayMs * 2, 10000);
      }
      setState("closed");
    } finally {
      running = false;
    }
  }

  loop();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
    /** Start again after the stream ended (a job reopened by retry or replan). */
    restart() {
      if (closed) return;
      if (!running) loop();
    },
    get lastId() {
      return lastId;
    },
  };
}
