// What every page shares: the server list (live from /events), its listeners and the page's timers.
import { api } from "./api.js";

export const state = {
  servers: [],
  serversLoaded: false,
  timers: [],
};

// Views subscribe to server-list changes; the current view's listeners are dropped on navigation.
let serverListeners = [];

export function onServers() {
  const count = state.servers.filter((s) => s.quarantined).length;
  const badge = document.getElementById("quarantine-count");
  if (badge) {
    badge.hidden = count === 0;
    badge.textContent = String(count);
  }
  for (const listener of serverListeners) listener();
}

export function listen(listener) {
  serverListeners.push(listener);
  listener();
}

export function setServers(servers) {
  state.servers = servers || [];
  state.serversLoaded = true;
  onServers();
}

export async function refreshServers() {
  setServers((await api("GET", "/api/v1/servers")).servers);
}

export function findServer(name) {
  return state.servers.find((s) => s.name === name);
}

// A timer that lives as long as the current page.
export function every(ms, callback) {
  const timer = setInterval(callback, ms);
  state.timers.push(timer);
  return () => {
    clearInterval(timer);
    state.timers = state.timers.filter((t) => t !== timer);
  };
}

// Called on navigation: the old page's listeners and timers go with it.
export function leavePage() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  serverListeners = [];
}
