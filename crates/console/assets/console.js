// The station console's forecourt page: one tile per fuelling point, drawn from /api/fps and
// kept live from /live (server-sent events). Every value goes in with textContent, never as HTML.
"use strict";

const ACTIVITY = {
  idle: "Idle",
  nozzle_out: "Nozzle out: fuelling",
  nozzle_in: "Nozzle back: waiting for the pump's sale",
  completed: "Sale completed",
};

// A car on a tile not read for this long is shown as perhaps gone (its last read is streamed
// at least every 5 s while it is read).
const UNSEEN_MS = 20000;

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
    if (i === 0) {
      // The newest crop of its plate, when the reader kept one (none: nothing shown).
      const crop = el("img", "crop");
      crop.alt = "crop of " + car.plate;
      crop.onerror = () => crop.remove();
      crop.src = "/crops/plate/" + encodeURIComponent(car.plate);
      row.append(crop);
    }
    row.append(el("span", "confidence", percent(car.confidence)));
    if (car.provisional) row.append(el("span", "provisional", "(first reads, not yet confirmed)"));
    if (car.note) row.append(el("span", "note", car.note));
    const waiting = el("span", "waiting");
    waiting.dataset.since = car.arrived_t;
    waiting.dataset.prefix = i === 0 ? "at the pump " : "waiting ";
    row.append(waiting);
    // A car not read for a while may have left (its visit ends 3 minutes after its last read).
    const unseen = el("span", "unseen");
    unseen.dataset.lastRead = car.last_read_t;
    row.append(unseen);
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
  document.querySelectorAll(".unseen").forEach((u) => {
    const unseen = now - Number(u.dataset.lastRead);
    const stale = unseen > UNSEEN_MS;
    u.textContent = stale ? "not read for " + duration(unseen) : "";
    u.closest(".car").classList.toggle("stale", stale);
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

// The arrivals ticker: "苏E05EV8 at pump 3", newest first; a provisional arrival is marked until
// its confirmation replaces it, a retracted one leaves.
function arrivalItem(a) {
  const item = el("li", "arrival" + (a.state === "provisional" ? " provisional-arrival" : ""));
  item.id = "arrival-" + a.visit;
  item.dataset.decidedT = a.decided_t || "";
  item.dataset.shownT = Date.now();
  item.append(el("span", "plate", a.plate));
  item.append(el("span", "where", a.fp ? "at pump " + a.fp : "at the entrance"));
  item.append(el("span", "when", clock(a.t)));
  if (a.state === "provisional") item.append(el("span", "provisional", "(first reads, not yet confirmed)"));
  if (a.note) item.append(el("span", "note", a.note));
  return item;
}

function showArrival(a) {
  const ticker = document.getElementById("ticker");
  const old = document.getElementById("arrival-" + a.visit);
  if (a.state === "retracted") {
    if (old) old.remove();
    return;
  }
  const item = arrivalItem(a);
  if (old) old.replaceWith(item);
  else ticker.prepend(item);
  while (ticker.children.length > 50) ticker.lastChild.remove();
}

function ticker(main) {
  const status = document.getElementById("live-status");
  const source = new EventSource(main.dataset.live);
  const load = async () => {
    const response = await fetch(main.dataset.state, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location = "/login";
      return;
    }
    const arrivals = await response.json();
    const list = document.getElementById("ticker");
    list.replaceChildren(...arrivals.map(arrivalItem));
  };
  source.addEventListener("open", () => {
    status.textContent = "Live";
    status.className = "status live";
    load();
  });
  source.addEventListener("error", () => {
    status.textContent = "Connection lost; reconnecting...";
    status.className = "status lost";
  });
  source.addEventListener("arrival", (e) => showArrival(JSON.parse(e.data)));
  source.addEventListener("resync", load);
}

document.addEventListener("DOMContentLoaded", () => {
  const arrivals = document.getElementById("arrivals");
  if (arrivals) ticker(arrivals);
});

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("forecourt");
  if (main) {
    follow(main);
    setInterval(tick, 1000);
  }
});

// The installer's zone editor: every zone drawn over its camera's latest picture, corners
// dragged with the pointer, the list below to give each zone its pump or remove it, and one
// save that sends the whole layout back (the server checks and applies it); the plates read
// live boxed over the pictures in their zone's colour.
const COLOURS = ["#e53935", "#1e88e5", "#43a047", "#fdd835", "#d81b60", "#00acc1", "#fb8c00", "#8e6cc0"];
const SVG = "http://www.w3.org/2000/svg";

function editor(main) {
  let zones = []; // {fp, camera, polygon: [[x, y], ...]} with x, y in 0..1
  const status = document.getElementById("save-status");

  function colour(fp) {
    return COLOURS[(Number(fp) - 1 + COLOURS.length * 100) % COLOURS.length];
  }

  function draw() {
    main.querySelectorAll("section.camera").forEach((section) => {
      const svg = section.querySelector("svg.zones");
      svg.replaceChildren();
      zones.forEach((zone, z) => {
        if (zone.camera !== section.dataset.camera) return;
        const shape = document.createElementNS(SVG, "polygon");
        shape.setAttribute("points", zone.polygon.map(([x, y]) => x * 1000 + "," + y * 1000).join(" "));
        shape.setAttribute("class", "zone");
        shape.style.stroke = colour(zone.fp);
        shape.style.fill = colour(zone.fp);
        svg.append(shape);
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", zone.polygon[0][0] * 1000 + 8);
        label.setAttribute("y", zone.polygon[0][1] * 1000 + 40);
        label.textContent = "pump " + zone.fp;
        svg.append(label);
        zone.polygon.forEach(([x, y], v) => {
          const handle = document.createElementNS(SVG, "circle");
          handle.setAttribute("cx", x * 1000);
          handle.setAttribute("cy", y * 1000);
          handle.setAttribute("r", 14);
          handle.setAttribute("class", "corner");
          handle.dataset.zone = z;
          handle.dataset.vertex = v;
          handle.style.stroke = colour(zone.fp);
          svg.append(handle);
        });
      });
    });
    list();
  }

  function list() {
    const table = document.getElementById("zone-list");
    table.querySelectorAll("tr.zone-row").forEach((r) => r.remove());
    zones.forEach((zone, z) => {
      const row = el("tr", "zone-row");
      row.dataset.zone = z;
      row.append(el("td", "", zone.camera));
      const fpCell = el("td");
      const fp = el("input");
      fp.type = "number";
      fp.min = 1;
      fp.max = 99;
      fp.value = zone.fp;
      fp.className = "zone-fp";
      fp.addEventListener("change", () => {
        zone.fp = Number(fp.value);
        draw();
      });
      fpCell.append(fp);
      row.append(fpCell);
      row.append(el("td", "corners", zone.polygon.map(([x, y]) => x.toFixed(3) + "," + y.toFixed(3)).join("  ")));
      const remove = el("button", "remove-zone", "Remove");
      remove.type = "button";
      remove.addEventListener("click", () => {
        zones.splice(z, 1);
        draw();
      });
      const removeCell = el("td");
      removeCell.append(remove);
      row.append(removeCell);
      table.append(row);
    });
  }

  // Dragging a corner: the pointer's position over the picture, in 0..1, clamped to it.
  let dragging = null;
  main.addEventListener("pointerdown", (e) => {
    if (!e.target.classList.contains("corner")) return;
    dragging = { zone: Number(e.target.dataset.zone), vertex: Number(e.target.dataset.vertex), svg: e.target.ownerSVGElement };
    e.preventDefault();
  });
  document.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    const box = dragging.svg.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
    const y = Math.min(1, Math.max(0, (e.clientY - box.top) / box.height));
    zones[dragging.zone].polygon[dragging.vertex] = [Number(x.toFixed(4)), Number(y.toFixed(4))];
    draw();
  });
  document.addEventListener("pointerup", () => {
    dragging = null;
  });

  main.querySelectorAll("button.add-zone").forEach((button) => {
    button.addEventListener("click", () => {
      const camera = button.closest("section.camera").dataset.camera;
      const fp = zones.length ? zones[zones.length - 1].fp : 1;
      zones.push({ fp, camera, polygon: [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]] });
      draw();
    });
  });

  document.getElementById("save-zones").addEventListener("click", async () => {
    const byFp = new Map();
    zones.forEach((zone) => {
      if (!byFp.has(zone.fp)) byFp.set(zone.fp, []);
      byFp.get(zone.fp).push({ camera: zone.camera, polygon: zone.polygon });
    });
    const layout = { fps: Array.from(byFp, ([fp, list]) => ({ fp, zones: list })) };
    status.textContent = "Saving...";
    const response = await fetch(main.dataset.zones, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ csrf: main.dataset.csrf, layout }),
    });
    const outcome = await response.json().catch(() => ({ saved: false, problems: ["no answer"] }));
    if (outcome.saved && outcome.problems.length === 0) {
      const applied = outcome.reload && outcome.reload.applied ? outcome.reload.applied.join(", ") : "";
      status.textContent = "Saved and applied (" + (applied || "nothing changed") + "); the old file is " + outcome.backup;
      status.className = "message done";
    } else {
      status.textContent = (outcome.saved ? "Saved, but: " : "Not saved: ") + outcome.problems.join("; ");
      status.className = "message refused";
    }
  });

  // The pictures: renewed every few seconds (the reader keeps one per camera every 2 s); one
  // not there yet (the camera just started) is asked for again.
  main.querySelectorAll(".stage img").forEach((img) => {
    const source = img.getAttribute("src");
    const renew = () => {
      img.src = source + "?t=" + Date.now();
    };
    img.addEventListener("error", () => setTimeout(renew, 2000));
    setInterval(renew, 5000);
  });

  // Plates read now, boxed in the colour of the zone (as drawn here, saved or not) their box's
  // centre falls in, grey in none, as the agent places them; each goes after 3 s.
  function inside(x, y, polygon) {
    let hit = false;
    for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
      const [xi, yi] = polygon[i];
      const [xj, yj] = polygon[j];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }
  const reads = new EventSource(main.dataset.reads);
  reads.addEventListener("reads", (e) => {
    const frame = JSON.parse(e.data);
    const section = Array.from(main.querySelectorAll("section.camera")).find((s) => s.dataset.camera === frame.camera);
    if (!section) return;
    const layer = section.querySelector("svg.reads");
    frame.plates.forEach((plate) => {
      const [x1, y1, x2, y2] = plate.bbox;
      const [cx, cy] = [(x1 + x2) / 2, (y1 + y2) / 2];
      const zone = zones.find((z) => z.camera === frame.camera && inside(cx, cy, z.polygon));
      const box = document.createElementNS(SVG, "rect");
      box.setAttribute("class", "read");
      box.setAttribute("x", x1 * 1000);
      box.setAttribute("y", y1 * 1000);
      box.setAttribute("width", Math.max(1, (x2 - x1) * 1000));
      box.setAttribute("height", Math.max(1, (y2 - y1) * 1000));
      box.style.stroke = zone ? colour(zone.fp) : "#9e9e9e";
      box.dataset.fp = zone ? zone.fp : "";
      box.dataset.plate = plate.text;
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", x1 * 1000);
      label.setAttribute("y", Math.max(30, y1 * 1000 - 8));
      label.textContent = plate.text;
      layer.append(box, label);
      setTimeout(() => {
        box.remove();
        label.remove();
      }, 3000);
    });
  });

  fetch(main.dataset.zones, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((layout) => {
      zones = [];
      layout.fps.forEach((fp) => fp.zones.forEach((z) => zones.push({ fp: fp.fp, camera: z.camera, polygon: z.polygon })));
      draw();
      main.dataset.ready = "yes";
    });
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("installer");
  if (main) editor(main);
});
