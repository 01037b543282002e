// The controller's API as the console calls it: the token from this tab's sessionStorage,
// sent as a Bearer header; errors carry the API's own detail.

const TOKEN_KEY = "edgewatch.token";
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function detailOf(body, fallback) {
  if (!body || body.detail === undefined) return fallback;
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return JSON.stringify(body.detail);
}

export async function api(path, { method = "GET", body, params, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = `${API}${path}`;
  if (params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
    }
    if ([...query].length) url += `?${query}`;
  }
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    const error = new ApiError(response.status, detailOf(parsed, response.statusText));
    if (response.status === 401) window.dispatchEvent(new CustomEvent("edgewatch:unauthorized"));
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

/** Every page of a list endpoint (up to maxRows). */
export async function all(path, params = {}, maxRows = 5000) {
  const rows = [];
  const limit = 1000;
  for (let offset = 0; offset < maxRows; offset += limit) {
    const page = await api(path, { params: { ...params, limit, offset } });
    rows.push(...page);
    if (page.length < limit) break;
  }
  return rows;
}
