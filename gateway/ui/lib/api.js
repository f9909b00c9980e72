// The REST API with the key from sessionStorage (never put on screen), as X-API-Key.

const KEY_STORAGE = "mcpproxy.apikey";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export const enc = encodeURIComponent;

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

let unauthorized = () => {};

// The app signs out (and shows the login page) when a call is refused with 401.
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export async function api(method, path, body) {
  return (await apiCall(method, path, body)).data;
}

// The answer's data with the request id the proxy gave it (X-Request-Id; the activity log keeps it).
export async function apiCall(method, path, body, extraHeaders) {
  const headers = { ...extraHeaders, "X-API-Key": apiKey(), Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(`The proxy did not answer (${error.message}).`, 0);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    throw new ApiError(`${method} ${path}: HTTP ${response.status}, not JSON`, response.status);
  }
  if (response.status === 401) {
    unauthorized("The API key was refused. Enter it again.");
    throw new ApiError(payload.error || "unauthorized", 401);
  }
  if (!response.ok || !payload.success) {
    const id = payload && payload.request_id ? ` (request ${payload.request_id})` : "";
    throw new ApiError(`${(payload && payload.error) || `HTTP ${response.status}`}${id}`, response.status);
  }
  return { data: payload.data, requestId: response.headers.get("X-Request-Id") || "" };
}
