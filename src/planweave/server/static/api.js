// The HTTP API client: one fetch wrapper that adds the bearer token and turns the server's
// {"error": {"code", "message"}} bodies into ApiError.

const TOKEN_KEY = "planweave.token";

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the token then lasts for this page only.
  }
  window.dispatchEvent(new CustomEvent("planweave:token"));
}

export function authHeaders(extra = {}) {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
}

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfterS = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    // The error body's other fields (a 409's current_version) and a 429's Retry-After seconds.
    this.details = details;
    this.retryAfterS = retryAfterS;
  }
}

async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let details = {};
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      details = { ...body, ...body.error };
    } else if (body && typeof body.detail === "string") {
      message = body.detail;
    }
  } catch {
    // Not JSON: keep the status text.
  }
  const retry = Number(response.headers.get("Retry-After"));
  const err = new ApiError(response.status, code, message, details, Number.isFinite(retry) && retry > 0 ? retry : null);
  if (response.status === 401 || response.status === 403) {
    window.dispatchEvent(new CustomEvent("planweave:auth", { detail: err }));
  }
  return err;
}

/** Call the API and return the parsed JSON body (null for 204). */
export async function request(method, path, body, { signal } = {}) {
  const init = { method, headers: authHeaders({ Accept: "application/json" }), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    if (exc && exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", "Cannot reach the server.");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Fetch a file with the auth header and return it as a Blob. */
export async function fetchBlob(path, { signal } = {}) {
  const response = await fetch(path, { headers: authHeaders(), signal });
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

const enc = encodeURIComponent;

export const api = {
  listJobs: ({ status = "", limit = 50, offset = 0 } = {}, opts) => {
    const q = new URLSearchParams({ limit: String(limit), offset: String(offset) });
    if (status) q.set("status", status);
    return request("GET", `/v1/jobs?${q}`, undefined, opts);
  },
  submitJob: (body) => request("POST", "/v1/jobs", body),
  getJob: (id, opts) => request("GET", `/v1/jobs/${enc(id)}`, undefined, opts),
  cancelJob: (id) => request("POST", `/v1/jobs/${enc(id)}/cancel`, {}),
  replanJob: (id) => request("POST", `/v1/jobs/${enc(id)}/replan`, {}),
  retryJob: (id) => request("POST", `/v1/jobs/${enc(id)}/retry`, {}),
  retryTask: (id, taskId) => request("POST", `/v1/jobs/${enc(id)}/tasks/${enc(taskId)}/retry`, {}),
  approveTask: (id, taskId, reason = "") => request("POST", `/v1/jobs/${enc(id)}/tasks/${enc(taskId)}/approve`, { reason }),
  rejectTask: (id, taskId, reason) => request("POST", `/v1/jobs/${enc(id)}/tasks/${enc(taskId)}/reject`, { reason }),
  listApprovals: (opts) => request("GET", "/v1/approvals", undefined, opts),
  deleteJob: (id) => request("DELETE", `/v1/jobs/${enc(id)}`),
  /** One page of a job's tasks in plan order; pass the page's next_after as `after` for the next. */
  listTasks: (id, { after = null, limit = null } = {}, opts) => {
    const q = new URLSearchParams();
    if (after !== null) q.set("after", after);
    if (limit !== null) q.set("limit", String(limit));
    const query = q.toString();
    return request("GET", `/v1/jobs/${enc(id)}/tasks${query ? `?${query}` : ""}`, undefined, opts);
  },
  getTask: (id, taskId, opts) => request("GET", `/v1/jobs/${enc(id)}/tasks/${enc(taskId)}`, undefined, opts),
  eventsAfter: (id, after, opts) =>
    request("GET", `/v1/jobs/${enc(id)}/events?format=json&after=${enc(String(after))}`, undefined, opts),
  eventsPath: (id) => `/v1/jobs/${enc(id)}/events`,
  listArtifacts: (id, opts) => request("GET", `/v1/jobs/${enc(id)}/artifacts`, undefined, opts),
  artifactPath: (id, name) => `/v1/jobs/${enc(id)}/artifacts/${enc(name)}`,
  listDeadLetters: (opts) => request("GET", "/v1/dlq", undefined, opts),
  listSessions: (opts) => request("GET", "/v1/sessions", undefined, opts),
  getSession: (id, opts) => request("GET", `/v1/sessions/${enc(id)}`, undefined, opts),
  addSessionInput: (id, body) => request("POST", `/v1/sessions/${enc(id)}/inputs`, body),
  removeSessionInput: (id, inputId) => request("DELETE", `/v1/sessions/${enc(id)}/inputs/${enc(inputId)}`),
  sessionEventsPath: (id) => `/v1/sessions/${enc(id)}/events`,
  redrive: (queue, id) => request("POST", `/v1/dlq/${enc(queue)}/${enc(id)}/redrive`, {}),
};
