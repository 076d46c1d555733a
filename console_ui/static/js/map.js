// Leaflet map of London: borough boundaries with names, wards with names when zoomed in,
// incidents and units as circle markers. Under the vectors, an optional raster tile layer
// from GET /api/map-config (CAD_MAP_TILE_URL); without one the map stays offline vectors.
import { get } from "./api.js";
import { esc } from "./common.js";
import { attachPlaceSearch, placeLine } from "./places.js";

/* global L */

export const GRADE_COLOURS = { I: "#ff5c5c", S: "#ffb020", E: "#5cb3ff", R: "#a9b6c3" };
export const STATUS_COLOURS = {
  available: "#3ecf8e",
  dispatched: "#ffb020",
  en_route: "#ffd54a",
  on_scene: "#c792ea",
  unavailable: "#6b7785",
  off_duty: "#4a5561",
};

const BOROUGH_LABEL_ZOOM = 11;
const WARD_ZOOM = 14; // wards (630 in London) are drawn and named from this zoom in
const GOTO_ZOOM = 16;
const GOTO_MARKER_MS = 15000;
const OFFLINE = { tile_url: null, attribution: "", max_zoom: 19 };

let configPromise = null;
/** The base-map settings, fetched once per page; a failure means the offline map. */
export function mapConfig() {
  if (!configPromise) configPromise = get("/api/map-config").catch(() => OFFLINE);
  return configPromise;
}

function areaStyle(tiles) {
  // Over a street map the boroughs are outlines with a hint of fill, so streets show.
  return tiles
    ? { color: "#28527a", weight: 1.6, opacity: 0.9, fillColor: "#28527a", fillOpacity: 0.05 }
    : { color: "#4b6a88", weight: 1, fillColor: "#1a2733", fillOpacity: 0.6 };
}

function wardStyle(tiles) {
  return tiles
    ? { color: "#3d6f9e", weight: 1, opacity: 0.9, dashArray: "4 3", fill: false }
    : { color: "#3f5a75", weight: 0.8, opacity: 0.9, dashArray: "3 3", fill: false };
}

function ringArea(ring) {
  let a = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
  }
  return a / 2;
}

function insideRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Where a polygon's name goes: its centroid when that lies inside, otherwise the middle of
 * the widest inside stretch of the line through it (a bounding-box centre can fall in the
 * next ward over for long, bent shapes such as riverside wards).
 */
export function labelPoint(geometry) {
  if (!geometry) return null;
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  if (!polys || !polys.length) return null;
  let poly = polys[0];
  let best = -1;
  for (const p of polys) {
    const a = Math.abs(ringArea(p[0]));
    if (a > best) {
      best = a;
      poly = p;
    }
  }
  const outer = poly[0];
  let cx = 0;
  let cy = 0;
  let a6 = 0;
  for (let i = 0, j = outer.length - 1; i < outer.length; j = i++) {
    const f = outer[j][0] * outer[i][1] - outer[i][0] * outer[j][1];
    cx += (outer[j][0] + outer[i][0]) * f;
    cy += (outer[j][1] + outer[i][1]) * f;
    a6 += 3 * f;
  }
  if (!a6) return L.latLng(outer[0][1], outer[0][0]);
  cx /= a6;
  cy /= a6;
  const inside = (x, y) => insideRing(x, y, outer) && !poly.slice(1).some((h) => insideRing(x, y, h));
  if (inside(cx, cy)) return L.latLng(cy, cx);
  const xs = [];
  for (const ring of poly) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if (yi > cy !== yj > cy) xs.push(((xj - xi) * (cy - yi)) / (yj - yi) + xi);
    }
  }
  xs.sort((p, q) => p - q);
  let mid = null;
  let widest = -1;
  for (let i = 0; i + 1 < xs.length; i += 2) {
    if (xs[i + 1] - xs[i] > widest) {
      widest = xs[i + 1] - xs[i];
      mid = (xs[i] + xs[i + 1]) / 2;
    }
  }
  return mid === null ? L.latLng(outer[0][1], outer[0][0]) : L.latLng(cy, mid);
}

function featureName(layer) {
  const p = layer.feature && layer.feature.properties;
  return p ? p.name : null;
}

function incidentTooltip(inc) {
  const head = `<strong>${esc(inc.grade)} · ${esc(inc.ref)}</strong> ${esc(inc.type_code || "")}
    (${esc(String(inc.status || "").replace("_", " "))})`;
  const where = inc.address_line || inc.address || "";
  return where ? `${head}<br>${esc(where)}` : head;
}

/**
 * Leaflet redraws the changed region of its canvas under a clip. On a software canvas each
 * shape drawn under that clip costs ~60× one drawn without (measured with 10,000 incident
 * markers: a region of 15% of the map 396 ms, the whole map unclipped 38 ms). Unless the
 * region is tiny (one marker changing), redraw the whole canvas instead.
 */
function wholeRedrawWhenLarge() {
  const proto = L.Canvas.prototype;
  if (proto._cadWholeRedraw) return;
  proto._cadWholeRedraw = true;
  const redraw = proto._redraw;
  proto._redraw = function () {
    const b = this._redrawBounds;
    if (b && this._bounds) {
      const part = b.getSize();
      const all = this._bounds.getSize();
      if (part.x * part.y > 0.01 * all.x * all.y) this._redrawBounds = null;
    }
    return redraw.call(this);
  };
}

export class CadMap {
  constructor(el, { onClick, zoom = 10 } = {}) {
    wholeRedrawWhenLarge();
    this.el = el;
    this.map = L.map(el, {
      zoomControl: true,
      attributionControl: false,
      preferCanvas: true,
      zoomSnap: 0.1,
      maxZoom: OFFLINE.max_zoom,
    });
    this.map.setView([51.505, -0.11], zoom);
    this.tiles = null;
    this.areas = L.layerGroup().addTo(this.map);
    this.areaLayer = null;
    this.wardLayer = null; // loaded the first time the map is zoomed in to wards
    this.wardLabels = L.layerGroup();
    this.wardCentres = [];
    this._wardsLoading = null;
    this.unitLayer = L.layerGroup().addTo(this.map);
    this.incidentLayer = L.layerGroup().addTo(this.map);
    this.pinLayer = L.layerGroup().addTo(this.map);
    this.gotoLayer = L.layerGroup().addTo(this.map);
    this.incidentMarkers = new Map();
    // Boundaries get a pane (and canvas) below the markers, pins one above that lets the
    // mouse through. Incidents and units share ONE canvas of their own: a busy board's
    // redraws leave the boundaries alone, and a canvas stacked over another takes every
    // mouse event, so markers on two canvases could not all be hovered or clicked.
    this.map.createPane("areas").style.zIndex = 350; // tiles 200 < areas < overlay 400
    const pins = this.map.createPane("pins");
    pins.style.zIndex = 450;
    pins.style.pointerEvents = "none";
    this.incidentRenderer = L.canvas({ padding: 0.1 });
    // A new marker is last in drawing order, so it is drawn on top at once instead of
    // redrawing the region under it: a steady stream of calls adds markers all over the
    // map, and their union is the whole canvas (~50 ms a redraw at 2,000 markers).
    this.incidentRenderer._addPath = function (layer) {
      if (!this._ctx || !this._map) return L.Canvas.prototype._addPath.call(this, layer);
      this._drawing = true;
      layer._updatePath();
      this._drawing = false;
    };
    this.unitRenderer = this.incidentRenderer;
    this.unitMarkers = new Map();
    if (onClick) this.map.on("click", (e) => onClick(e.latlng.lat, e.latlng.lng));
    this.onIncidentClick = null;
    this.onUnitClick = null;
    window.__cadMap = this;
    // Panels around the map grow and shrink (duplicates, detail): keep Leaflet's size true.
    new ResizeObserver(() => this.map.invalidateSize()).observe(el);
    this.map.on("zoomend", () => this._zoomChanged());
    this.map.on("moveend", () => this._placeWardLabels());
    this.config = OFFLINE;
    this.ready = mapConfig().then((cfg) => this._applyConfig(cfg));
  }

  _applyConfig(cfg) {
    this.config = cfg || OFFLINE;
    const maxZoom = Number(this.config.max_zoom) || OFFLINE.max_zoom;
    this.map.setMaxZoom(maxZoom);
    if (this.config.tile_url) {
      // Tiles sit in Leaflet's tile pane, under every vector pane.
      this.tiles = L.tileLayer(this.config.tile_url, {
        maxZoom,
        attribution: esc(this.config.attribution || ""),
      }).addTo(this.map);
      L.control.attribution({ prefix: false }).addTo(this.map);
      this.el.classList.add("has-tiles");
      if (this.areaLayer) this.areaLayer.setStyle(areaStyle(true));
      if (this.areaLayer && this._deskAreas) this.showDesk(this._deskAreas, { fit: false });
      if (this.wardLayer) this.wardLayer.setStyle(wardStyle(true));
    }
    this.el.dataset.baseMap = this.tiles ? "tiles" : "offline";
  }

  async loadAreas() {
    await this.ready;
    const fc = await get("/api/areas?level=borough");
    const layer = L.geoJSON(fc, {
      style: areaStyle(!!this.tiles),
      interactive: false,
      pane: "areas",
    });
    layer.addTo(this.areas);
    this.areaLayer = layer;
    const b = layer.getBounds();
    // Not animated: a zoom animation still running would swallow the page's next setView.
    if (b.isValid()) this.map.fitBounds(b, { padding: [4, 4], animate: false });
    // Borough names as quiet labels at each area's centre.
    layer.eachLayer((l) => {
      const name = featureName(l);
      if (!name) return;
      L.tooltip({ permanent: true, direction: "center", className: "area-label", interactive: false })
        .setLatLng(labelPoint(l.feature.geometry) || l.getBounds().getCenter())
        .setContent(esc(name))
        .addTo(this.areas);
    });
    this._zoomChanged();
    this.areaList = (fc.features || [])
      .map((f) => f.properties || {})
      .filter((p) => p.code)
      .map((p) => ({ code: String(p.code), name: String(p.name || p.code) }));
    if (this._deskAreas) this.showDesk(this._deskAreas, { fit: this._deskFit });
    return this.areaList;
  }

  /**
   * A desk's boroughs (codes; null or empty for all): those stand out, the rest dim, and
   * with fit the map frames them. Before the boroughs load it is kept for when they do.
   */
  showDesk(codes, { fit = true } = {}) {
    const set = codes && codes.length ? new Set(codes) : null;
    this._deskAreas = set ? [...set] : null;
    this._deskFit = fit;
    this.el.dataset.desk = set ? [...set].sort().join(",") : "";
    if (!this.areaLayer) return;
    const base = areaStyle(!!this.tiles);
    let bounds = null;
    this.areaLayer.eachLayer((l) => {
      const code = l.feature && l.feature.properties && String(l.feature.properties.code);
      const mine = !set || set.has(code);
      l.setStyle(
        mine
          ? { ...base, weight: set ? base.weight + 0.8 : base.weight }
          : { ...base, opacity: 0.35, fillOpacity: this.tiles ? 0.18 : 0.25, fillColor: "#0b1015" },
      );
      if (set && mine) bounds = bounds ? bounds.extend(l.getBounds()) : L.latLngBounds(l.getBounds().getSouthWest(), l.getBounds().getNorthEast());
    });
    if (!fit) return;
    const b = bounds || this.areaLayer.getBounds();
    if (b.isValid()) this.map.fitBounds(b, { padding: [4, 4], animate: false });
  }

  _zoomChanged() {
    const z = this.map.getZoom();
    this.el.classList.toggle("hide-area-labels", z < BOROUGH_LABEL_ZOOM);
    const wantWards = z >= WARD_ZOOM;
    if (wantWards && !this.wardLayer) {
      this._loadWards().catch(() => {
        this._wardsLoading = null; // try again at the next zoom
      });
    } else if (this.wardLayer) {
      const on = this.map.hasLayer(this.wardLayer);
      if (wantWards && !on) {
        this.wardLayer.addTo(this.map);
        this.wardLabels.addTo(this.map);
      } else if (!wantWards && on) {
        this.wardLayer.remove();
        this.wardLabels.remove();
      }
    }
    this._placeWardLabels();
  }

  _loadWards() {
    if (!this._wardsLoading) {
      this._wardsLoading = get("/api/areas?level=ward").then((fc) => {
        const layer = L.geoJSON(fc, {
          style: wardStyle(!!this.tiles),
          interactive: false,
          pane: "areas",
        });
        this.wardCentres = [];
        layer.eachLayer((l) => {
          const name = featureName(l);
          if (!name) return;
          const at = labelPoint(l.feature.geometry) || l.getBounds().getCenter();
          this.wardCentres.push({ name, at, label: null });
        });
        this.wardLayer = layer;
        this.el.dataset.wards = String(this.wardCentres.length);
        this._zoomChanged();
      });
    }
    return this._wardsLoading;
  }

  /** Ward names only for the wards in view: 630 permanent labels would weigh on every pan. */
  _placeWardLabels() {
    if (!this.wardLayer || !this.map.hasLayer(this.wardLayer)) return;
    const view = this.map.getBounds().pad(0.25);
    for (const w of this.wardCentres) {
      const inView = view.contains(w.at);
      if (inView && !w.label) {
        w.label = L.tooltip({
          permanent: true,
          direction: "center",
          className: "ward-label",
          interactive: false,
        })
          .setLatLng(w.at)
          .setContent(esc(w.name));
        this.wardLabels.addLayer(w.label);
      } else if (!inView && w.label) {
        this.wardLabels.removeLayer(w.label);
        w.label = null;
      }
    }
  }

  resize() {
    this.map.invalidateSize();
  }

  /** Add or restyle one incident's marker ({id, lat, lng, grade, ref, status, address_line}). */
  upsertIncident(inc, selected = false) {
    if (inc.lat == null || inc.lng == null) {
      this.removeIncident(inc.id);
      return;
    }
    const style = {
      radius: selected ? 10 : 7,
      color: selected ? "#ffd54a" : "#0b0f14",
      weight: selected ? 3 : 1.5,
      // Only the selected one is outlined: on a software canvas an outlined circle costs
      // ~15× a filled one (10,000 markers: 210 ms against 12 ms a frame).
      stroke: selected,
      renderer: this.incidentRenderer,
      fillColor: GRADE_COLOURS[inc.grade] || "#fff",
      fillOpacity: 0.95,
    };
    let m = this.incidentMarkers.get(inc.id);
    if (!m) {
      m = L.circleMarker([inc.lat, inc.lng], style).addTo(this.incidentLayer);
      m.on("click", () => this.onIncidentClick && this.onIncidentClick(inc.id));
      this.incidentMarkers.set(inc.id, m);
      this.el.dataset.incidentMarkers = String(this.incidentMarkers.size);
    } else {
      m.setLatLng([inc.lat, inc.lng]);
      m.setStyle(style);
    }
    // The tooltip's text is built only when it opens: cheap for thousands of markers.
    if (!m.getTooltip()) {
      m.bindTooltip(() => incidentTooltip(m.incident), { direction: "top", offset: [0, -8] });
    }
    m.incident = inc;
    if (selected) m.bringToFront();
  }

  removeIncident(id) {
    const m = this.incidentMarkers.get(id);
    if (!m) return;
    m.remove();
    this.incidentMarkers.delete(id);
    this.el.dataset.incidentMarkers = String(this.incidentMarkers.size);
  }

  /** Replace incident markers with this list. */
  setIncidents(list, selectedId = null) {
    const seen = new Set();
    for (const inc of list) {
      if (inc.lat == null || inc.lng == null) continue;
      seen.add(inc.id);
      this.upsertIncident(inc, inc.id === selectedId);
    }
    for (const id of [...this.incidentMarkers.keys()]) if (!seen.has(id)) this.removeIncident(id);
    this.el.dataset.incidentMarkers = String(this.incidentMarkers.size);
  }

  /** Replace unit markers ({id, lat, lng, status, callsign}). */
  setUnits(list) {
    const seen = new Set();
    for (const u of list) {
      if (u.lat == null || u.lng == null || u.status === "off_duty") continue;
      seen.add(u.id);
      const style = {
        renderer: this.unitRenderer,
        radius: 4,
        color: "#0b0f14",
        weight: 1,
        fillColor: STATUS_COLOURS[u.status] || "#fff",
        fillOpacity: 0.9,
      };
      let m = this.unitMarkers.get(u.id);
      if (!m) {
        m = L.circleMarker([u.lat, u.lng], style).addTo(this.unitLayer);
        m.on("click", () => this.onUnitClick && this.onUnitClick(u.id));
        this.unitMarkers.set(u.id, m);
      } else {
        m.setLatLng([u.lat, u.lng]);
        m.setStyle(style);
      }
      m.bindTooltip(`${esc(u.callsign)} (${esc(String(u.status).replace("_", " "))})`);
    }
    for (const [id, m] of this.unitMarkers) {
      if (!seen.has(id)) {
        m.remove();
        this.unitMarkers.delete(id);
      }
    }
  }

  /** Add, move or restyle one unit's marker, touching only what changed (each change
   * redraws part of the canvas; setUnits touches every unit). */
  upsertUnit(u) {
    let m = this.unitMarkers.get(u.id);
    if (u.lat == null || u.lng == null || u.status === "off_duty") {
      if (m) {
        m.remove();
        this.unitMarkers.delete(u.id);
      }
      return;
    }
    if (!m) {
      m = L.circleMarker([u.lat, u.lng], {
        renderer: this.unitRenderer,
        radius: 4,
        color: "#0b0f14",
        weight: 1,
        fillColor: STATUS_COLOURS[u.status] || "#fff",
        fillOpacity: 0.9,
      }).addTo(this.unitLayer);
      m.on("click", () => this.onUnitClick && this.onUnitClick(u.id));
      m.bindTooltip(() => `${esc(m.unit.callsign)} (${esc(String(m.unit.status).replace("_", " "))})`);
      this.unitMarkers.set(u.id, m);
    } else {
      const at = m.getLatLng();
      if (at.lat !== u.lat || at.lng !== u.lng) m.setLatLng([u.lat, u.lng]);
      if (!m.unit || m.unit.status !== u.status) {
        m.setStyle({ fillColor: STATUS_COLOURS[u.status] || "#fff" });
      }
    }
    m.unit = { callsign: u.callsign, status: u.status };
  }

  removeUnit(id) {
    const m = this.unitMarkers.get(id);
    if (!m) return;
    m.remove();
    this.unitMarkers.delete(id);
  }

  /** A single pin (the handler's chosen location), labelled with its address line if given. */
  setPin(lat, lng, label = null) {
    this.pinLayer.clearLayers();
    if (lat == null || lng == null) {
      delete this.el.dataset.pin;
      return;
    }
    const pin = L.circleMarker([lat, lng], {
      pane: "pins",
      interactive: false,
      radius: 9,
      color: "#ffd54a",
      weight: 3,
      fillColor: "#ffd54a",
      fillOpacity: 0.35,
    }).addTo(this.pinLayer);
    if (label) {
      pin.bindTooltip(esc(label), {
        permanent: true,
        direction: "top",
        offset: [0, -10],
        className: "pin-label",
      });
    }
    this.el.dataset.pin = `${lat.toFixed(5)},${lng.toFixed(5)}`;
  }

  focus(lat, lng, zoom = 13) {
    if (lat != null && lng != null) this.map.setView([lat, lng], Math.max(this.map.getZoom(), zoom));
  }

  /** Fly to a place hit ({label, lat, lng, ward, area}) and mark it for a while. */
  goTo(hit, zoom = GOTO_ZOOM) {
    this.gotoLayer.clearLayers();
    clearTimeout(this._gotoTimer);
    const at = [hit.lat, hit.lng];
    L.circleMarker(at, {
      pane: "pins",
      radius: 11,
      color: "#ffffff",
      weight: 3,
      fillColor: "#5cb3ff",
      fillOpacity: 0.5,
      interactive: false,
    })
      .bindTooltip(esc(placeLine(hit)), {
        permanent: true,
        direction: "top",
        offset: [0, -12],
        className: "pin-label",
      })
      .addTo(this.gotoLayer);
    this._gotoTimer = setTimeout(() => this.gotoLayer.clearLayers(), GOTO_MARKER_MS);
    this.map.flyTo(at, Math.max(zoom, Math.min(this.map.getZoom(), this.map.getMaxZoom())), {
      duration: 0.6,
    });
    this.el.dataset.goto = hit.label;
  }

  /** A "Go to postcode or place" box (top left); returns the place search it runs. */
  addGoToBox({ placeholder = "Go to postcode or place" } = {}) {
    if (this.gotoSearch) return this.gotoSearch;
    const box = L.DomUtil.create("div", "leaflet-control cad-goto");
    box.innerHTML = `<label class="sr-only" for="map-goto">${esc(placeholder)}</label>
      <input id="map-goto" type="text" placeholder="${esc(placeholder)}" maxlength="120">`;
    // Clicks, drags and wheel turns in the box are not the map's.
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    const Control = L.Control.extend({ options: { position: "topleft" }, onAdd: () => box });
    new Control().addTo(this.map);
    box.parentNode.insertBefore(box, box.parentNode.firstChild); // above the zoom buttons
    const input = box.querySelector("input");
    this.gotoSearch = attachPlaceSearch(input, { onPick: (hit) => this.goTo(hit) });
    return this.gotoSearch;
  }
}
