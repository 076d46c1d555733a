// Leaflet map of London: response areas as vector polygons on a plain background (no
// tile server unless localStorage.cadTileUrl names one), incidents and units as circle
// markers.
import { get } from "./api.js";

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

export class CadMap {
  constructor(el, { onClick, zoom = 10 } = {}) {
    this.map = L.map(el, {
      zoomControl: true,
      attributionControl: false,
      preferCanvas: true,
      zoomSnap: 0.1,
    });
    this.map.setView([51.505, -0.11], zoom);
    const tiles = localStorage.getItem("cadTileUrl");
    if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(this.map);
    this.areas = L.layerGroup().addTo(this.map);
    this.unitLayer = L.layerGroup().addTo(this.map);
    this.incidentLayer = L.layerGroup().addTo(this.map);
    this.pinLayer = L.layerGroup().addTo(this.map);
    this.incidentMarkers = new Map();
    this.unitMarkers = new Map();
    if (onClick) this.map.on("click", (e) => onClick(e.latlng.lat, e.latlng.lng));
    this.onIncidentClick = null;
    window.__cadMap = this;
    // Panels around the map grow and shrink (duplicates, detail): keep Leaflet's size true.
    new ResizeObserver(() => this.map.invalidateSize()).observe(el);
    this.onUnitClick = null;
  }

  async loadAreas() {
    const fc = await get("/api/areas");
    const layer = L.geoJSON(fc, {
      style: { color: "#4b6a88", weight: 1, fillColor: "#1a2733", fillOpacity: 0.6 },
      interactive: false,
    });
    layer.addTo(this.areas);
    const b = layer.getBounds();
    if (b.isValid()) this.map.fitBounds(b, { padding: [4, 4] });
    // Borough names as quiet labels at each area's centre.
    layer.eachLayer((l) => {
      const name = l.feature && l.feature.properties && l.feature.properties.name;
      if (!name) return;
      L.tooltip({ permanent: true, direction: "center", className: "area-label", interactive: false })
        .setLatLng(l.getBounds().getCenter())
        .setContent(name)
        .addTo(this.areas);
    });
    this.map.on("zoomend", () => this._labels());
    this._labels();
  }

  _labels() {
    const show = this.map.getZoom() >= 11;
    this.map.getContainer().classList.toggle("hide-area-labels", !show);
  }

  resize() {
    this.map.invalidateSize();
  }

  /** Replace incident markers with this list ({id, lat, lng, grade, ref, status}). */
  setIncidents(list, selectedId = null) {
    const seen = new Set();
    for (const inc of list) {
      if (inc.lat == null || inc.lng == null) continue;
      seen.add(inc.id);
      const style = {
        radius: inc.id === selectedId ? 10 : 7,
        color: inc.id === selectedId ? "#ffd54a" : "#0b0f14",
        weight: inc.id === selectedId ? 3 : 1.5,
        fillColor: GRADE_COLOURS[inc.grade] || "#fff",
        fillOpacity: 0.95,
      };
      let m = this.incidentMarkers.get(inc.id);
      if (!m) {
        m = L.circleMarker([inc.lat, inc.lng], style).addTo(this.incidentLayer);
        m.on("click", () => this.onIncidentClick && this.onIncidentClick(inc.id));
        this.incidentMarkers.set(inc.id, m);
      } else {
        m.setLatLng([inc.lat, inc.lng]);
        m.setStyle(style);
      }
      m.bindTooltip(`${inc.grade} · ${inc.ref} · ${inc.type_code || ""} (${inc.status})`);
      if (inc.id === selectedId) m.bringToFront();
    }
    for (const [id, m] of this.incidentMarkers) {
      if (!seen.has(id)) {
        m.remove();
        this.incidentMarkers.delete(id);
      }
    }
    this.map.getContainer().dataset.incidentMarkers = String(this.incidentMarkers.size);
  }

  /** Replace unit markers ({id, lat, lng, status, callsign}). */
  setUnits(list) {
    const seen = new Set();
    for (const u of list) {
      if (u.lat == null || u.lng == null || u.status === "off_duty") continue;
      seen.add(u.id);
      const style = {
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
      m.bindTooltip(`${u.callsign} (${u.status.replace("_", " ")})`);
    }
    for (const [id, m] of this.unitMarkers) {
      if (!seen.has(id)) {
        m.remove();
        this.unitMarkers.delete(id);
      }
    }
  }

  /** A single pin (the handler's chosen location). */
  setPin(lat, lng) {
    this.pinLayer.clearLayers();
    if (lat == null || lng == null) return;
    L.circleMarker([lat, lng], {
      radius: 9,
      color: "#ffd54a",
      weight: 3,
      fillColor: "#ffd54a",
      fillOpacity: 0.35,
    }).addTo(this.pinLayer);
  }

  focus(lat, lng, zoom = 13) {
    if (lat != null && lng != null) this.map.setView([lat, lng], Math.max(this.map.getZoom(), zoom));
  }
}
