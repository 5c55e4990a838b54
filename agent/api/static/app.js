// The admin page: renders /api/jobs and /api/quarantine, and posts retry/cancel.
// Values from DICOM headers are untrusted: they only ever reach the page as textContent.
"use strict";

const TOKEN_KEY = "dicom-agent-token";
const REFRESH_MS = 15000;
const STATES = ["queued", "running", "succeeded", "failed", "cancelled", "superseded"];
// Which buttons a job in each state gets; the server still decides (409 if not allowed).
const ACTIONS = {
  retry: { label: "Retry", states: new Set(["failed", "cancelled"]) },
  cancel: { label: "Cancel", states: new Set(["queued", "running"]) },
};

const $ = (id) => document.getElementById(id);

class Unauthorized extends Error {}

function takeTokenFromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  const response = await fetch(path, { ...options, headers });
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : { detail: await response.text() };
  if (response.status === 401) throw new Unauthorized(body.detail);
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function setStatus(text, problem = false) {
  $("status").textContent = text;
  $("status").classList.toggle("problem", problem);
}

function showLogin(message) {
  $("content").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = message;
  $("token").focus();
}

function showContent() {
  $("login").hidden = true;
  $("content").hidden = false;
  $("forget").hidden = false;
}

function report(error) {
  if (error instanceof Unauthorized) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(error.message);
  } else {
    setStatus(`error: ${error.message}`, true);
  }
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

function addCell(row, value, className = "") {
  const cell = row.insertCell();
  cell.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
  cell.className = className;
  return cell;
}

function seriesLabel(series) {
  const number = series.series_number === null ? "" : ` #${series.series_number}`;
  return `${series.modality} ${series.description}${number}`.trim();
}

function actionButton(job, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = ACTIONS[action].label;
  button.dataset.action = action;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const changed = await api(`/api/jobs/${job.id}/${action}`, { method: "POST" });
      setStatus(`job ${changed.id} is ${changed.state}`);
    } catch (error) {
      report(error);
    }
    await refresh();
  });
  return button;
}

function addJobRow(tbody, job) {
  const row = tbody.insertRow();
  row.dataset.jobId = job.id;
  row.dataset.state = job.state;
  addCell(row, job.id);
  addCell(row, job.state, `state state-${job.state}`);
  addCell(row, seriesLabel(job.series));
  addCell(row, job.series.study.accession_number);
  addCell(row, [job.pipeline, job.pipeline_version].filter(Boolean).join(" "));
  addCell(row, when(job.created_at), "time");
  addCell(row, when(job.updated_at), "time");
  addCell(row, job.attempts);
  addCell(row, job.error, "error");
  const actions = row.insertCell();
  for (const [action, { states }] of Object.entries(ACTIONS)) {
    if (states.has(job.state)) actions.append(actionButton(job, action));
  }
}

function addQuarantineRow(tbody, item) {
  const row = tbody.insertRow();
  row.dataset.file = item.name;
  addCell(row, when(item.received_at), "time");
  addCell(row, item.calling_ae);
  addCell(row, item.reason, "reason");
  addCell(row, item.name);
  addCell(row, item.size_bytes);
}

function fill(tableId, items, addRow) {
  const tbody = $(tableId).tBodies[0];
  tbody.replaceChildren();
  items.forEach((item) => addRow(tbody, item));
  $(`${tableId}-empty`).hidden = items.length > 0;
}

async function refresh() {
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    showLogin("");
    return;
  }
  const state = $("state-filter").value;
  const query = state ? `?state=${encodeURIComponent(state)}` : "";
  try {
    const [jobs, quarantined] = await Promise.all([
      api(`/api/jobs${query}`),
      api("/api/quarantine"),
    ]);
    fill("jobs", jobs, addJobRow);
    fill("quarantine", quarantined, addQuarantineRow);
    showContent();
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    report(error);
  }
}

function start() {
  for (const state of STATES) $("state-filter").add(new Option(state, state));
  $("state-filter").addEventListener("change", refresh);
  $("refresh").addEventListener("click", refresh);
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  takeTokenFromFragment();
  refresh();
  setInterval(() => {
    if (!$("content").hidden) refresh();
  }, REFRESH_MS);
}

start();
