// The station console's forecourt page: one tile per fuelling point, drawn from /api/fps and
// kept live from /live (server-sent events). Every value goes in with textContent, never as HTML.
"use strict";

const ACTIVITY = {
  idle: "Idle",
  nozzle_out: "Nozzle out: fuelling",
  nozzle_in: "Nozzle back: waiting for the pump's sale",
  completed: "Sale completed",
};

function clock(t) {
  return t ? new Date(t).toLocaleTimeString() : "";
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(p) {
  return (100 * p).toFixed(1) + " %";
}

// `decidedT`: when the station decided what the tile shows (from the event stream); the tile
// keeps it beside the time it was drawn, so the delay from decision to screen can be read off.
function renderTile(tile, decidedT) {
  const id = "fp-" + tile.fp;
  const section = el("section", "tile activity-" + tile.activity);
  section.id = id;
  section.dataset.fp = tile.fp;
  section.dataset.activity = tile.activity;
  if (decidedT) section.dataset.decidedT = decidedT;
  section.dataset.shownT = Date.now();
  // When the sale on the tile was decided and first drawn (later redraws keep them).
  const before = document.getElementById(id);
  const sale = tile.last_sale;
  if (sale && before && before.dataset.saleCompletedT === String(sale.completed_t)) {
    section.dataset.saleDecidedT = before.dataset.saleDecidedT || "";
    section.dataset.saleShownT = before.dataset.saleShownT || "";
  } else if (sale && decidedT) {
    section.dataset.saleDecidedT = decidedT;
    section.dataset.saleShownT = section.dataset.shownT;
  }
  if (sale) section.dataset.saleCompletedT = sale.completed_t;
  const head = el("div", "tile-head");
  head.append(el("h2", "", "Pump " + tile.fp));
  const online = tile.online === null ? "not heard from yet" : tile.online ? "online" : "offline";
  head.append(el("span", "online " + (tile.online === false ? "bad" : ""), online));
  section.append(head);
  const nozzle = tile.nozzle ? " (nozzle " + tile.nozzle + ")" : "";
  const since = tile.since_t ? ", since " + clock(tile.since_t) : "";
  section.append(el("p", "activity", ACTIVITY[tile.activity] + nozzle + since));
  const cars = el("div", "cars");
  if (tile.cars.length === 0) {
    cars.append(el("p", "no-car", "No car read at the pump"));
  }
  tile.cars.forEach((car, i) => {
    const row = el("p", i === 0 ? "car at-pump" : "car queued");
    row.append(el("span", "plate", car.plate));
    row.append(el("span", "confidence", percent(car.confidence)));
    const waiting = el("span", "waiting");
    waiting.dataset.since = car.arrived_t;
    waiting.dataset.prefix = i === 0 ? "at the pump " : "waiting ";
    row.append(waiting);
    cars.append(row);
  });
  section.append(cars);
  const last = el("div", "last-sale");
  if (sale) {
    last.append(el("span", "label", "Last sale " + clock(sale.completed_t) + ": "));
    last.append(el("span", "volume", sale.volume + " L"));
    last.append(el("span", "amount", sale.amount));
    last.append(el("span", "grade", sale.grade || ""));
    const plate = el("span", "sale-plate " + (sale.plate ? "" : "none"), sale.plate || "no plate");
    last.append(plate);
    if (sale.plate) last.append(el("span", "confidence", percent(sale.plate_confidence)));
  } else {
    last.append(el("span", "label", "No sale since the agent started"));
  }
  section.append(last);
  if (before) {
    before.replaceWith(section);
  } else {
    const tiles = document.getElementById("tiles");
    const after = Array.from(tiles.children).find((t) => Number(t.dataset.fp) > tile.fp);
    tiles.insertBefore(section, after || null);
  }
  tick();
}

function tick() {
  const now = Date.now();
  document.querySelectorAll(".waiting").forEach((w) => {
    w.textContent = w.dataset.prefix + duration(now - Number(w.dataset.since));
  });
}

// The state to start from (and to fall back on after a gap in the stream). A tile an event
// redrew while the state was on its way is newer than the state: it stays.
async function loadState(main) {
  const asked = Date.now();
  const response = await fetch(main.dataset.state, { credentials: "same-origin" });
  if (response.status === 401) {
    window.location = "/login";
    return;
  }
  const tiles = await response.json();
  tiles.forEach((tile) => {
    const shown = document.getElementById("fp-" + tile.fp);
    if (shown && shown.dataset.decidedT && Number(shown.dataset.shownT) >= asked) return;
    renderTile(tile);
  });
}

function follow(main) {
  const status = document.getElementById("live-status");
  const source = new EventSource(main.dataset.live);
  source.addEventListener("open", () => {
    status.textContent = "Live";
    status.className = "status live";
    loadState(main);
  });
  source.addEventListener("error", () => {
    status.textContent = "Connection lost; reconnecting...";
    status.className = "status lost";
  });
  source.addEventListener("fp_state", (e) => {
    const event = JSON.parse(e.data);
    renderTile(event, event.decided_t);
  });
  source.addEventListener("resync", () => loadState(main));
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("forecourt");
  if (main) {
    follow(main);
    setInterval(tick, 1000);
  }
});
