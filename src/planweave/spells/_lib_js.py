"""Library code of JavaScript spells, run in the script's global scope before the script:
agents and conversations as objects with methods, over the host calls ``agent.run``,
``agent.lookup`` and ``llm.chat``."""

from __future__ import annotations

__all__ = ["JS_LIB"]

JS_LIB = r"""
(function () {
  if (globalThis.agent && agent.run) {
    const runOp = agent.run, lookupOp = agent.lookup;
    const asTools = {};
    const resolved = (spec, depth) => {
      if (spec.ref || depth > 8) return spec;
      const out = Object.assign({}, spec);
      if (Array.isArray(spec.tools)) {
        out.tools = spec.tools.map(n => asTools[n] ? { agent: resolved(asTools[n], depth + 1) } : n);
      }
      return out;
    };
    const make = (name, spec) => ({
      name, spec,
      run: (input) => runOp(resolved(spec, 0), input),
      as_tool() { asTools[name] = spec; return name; },
    });
    agent.new = (spec) => {
      if (!spec || typeof spec.name !== "string") throw new Error("agent.new needs an object with a name");
      return make(spec.name, spec);
    };
    agent.get = async (name) => { await lookupOp(name); return make(name, { ref: name }); };
  }
  if (globalThis.llm && llm.chat) {
    const chat = llm.chat;
    llm.conversation = (opts = {}) => {
      const { system, ...rest } = opts;
      const messages = system ? [{ role: "system", content: system }] : [];
      return {
        async say(text) {
          messages.push({ role: "user", content: text });
          const reply = await chat(messages, rest);
          messages.push({ role: "assistant", content: reply });
          return reply;
        },
        history() { return messages.map(m => ({ role: m.role, content: m.content })); },
      };
    };
  }
})();
"""
