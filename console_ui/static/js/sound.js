// Audible cues (WebAudio tones, no sound files) and the per-user mute switch.
//
// Browsers refuse to start audio before the user has touched the page, so the
// AudioContext is made (or resumed) on the first tap or key press anywhere; a cue asked
// for before that is counted but silent. window.__cadSound.played counts the cues asked
// for, so a test can see one was given without hearing it.

let ctx = null;
const counters = { played: 0, muted: 0, audible: 0 };
window.__cadSound = counters;

function context() {
  if (ctx) return ctx;
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return null;
  try {
    ctx = new AC();
  } catch {
    ctx = null;
  }
  return ctx;
}

/** Make audio possible from the first user gesture on (call once per page). */
export function unlockAudioOnFirstGesture() {
  // Made at once: a browser that counts the sign-in tap (same site, just before) lets it
  // run now; otherwise it waits, suspended, for the first tap here.
  context();
  const unlock = () => {
    const c = context();
    if (c && c.state === "suspended") c.resume().catch(() => {});
    if (c && c.state !== "suspended") {
      window.removeEventListener("pointerdown", unlock, true);
      window.removeEventListener("keydown", unlock, true);
    }
  };
  window.addEventListener("pointerdown", unlock, true);
  window.addEventListener("keydown", unlock, true);
}

export function audioReady() {
  return Boolean(ctx && ctx.state === "running");
}

// Each pattern: [frequency Hz, start s, length s]. Distinct enough to tell apart unseen.
const PATTERNS = {
  job: [
    [880, 0, 0.18],
    [1175, 0.22, 0.18],
    [880, 0.44, 0.18],
    [1175, 0.66, 0.3],
  ],
  urgent: [
    [988, 0, 0.15],
    [988, 0.2, 0.15],
  ],
  alarm: [
    [740, 0, 0.22],
    [988, 0.25, 0.22],
    [740, 0.5, 0.22],
  ],
  emergency: [
    [1319, 0, 0.12],
    [880, 0.14, 0.12],
    [1319, 0.28, 0.12],
    [880, 0.42, 0.12],
    [1319, 0.56, 0.12],
    [880, 0.7, 0.12],
  ],
};

/** Play one cue. Returns whether it could be heard (audio unlocked). */
export function tone(kind = "alarm") {
  counters.played += 1;
  counters[kind] = (counters[kind] || 0) + 1;
  const c = ctx;
  if (!c || c.state !== "running") return false;
  const t0 = c.currentTime + 0.02;
  for (const [freq, start, len] of PATTERNS[kind] || PATTERNS.alarm) {
    const osc = c.createOscillator();
    const gain = c.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t0 + start);
    gain.gain.exponentialRampToValueAtTime(0.25, t0 + start + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + start + len);
    osc.connect(gain).connect(c.destination);
    osc.start(t0 + start);
    osc.stop(t0 + start + len + 0.02);
  }
  counters.audible += 1;
  return true;
}

/** Ring `kind` now and every `everyMs` until the returned stop() is called. */
export function ring(kind, everyMs) {
  tone(kind);
  const timer = setInterval(() => tone(kind), everyMs);
  return () => clearInterval(timer);
}

/** The mute switch for routine cues, remembered per user (localStorage cad.mute.<user>). */
export class Mute {
  constructor(username) {
    this.key = `cad.mute.${username}`;
    this.muted = localStorage.getItem(this.key) === "1";
  }

  set(muted) {
    this.muted = muted;
    if (muted) localStorage.setItem(this.key, "1");
    else localStorage.removeItem(this.key);
  }

  /** A routine cue, unless muted. */
  cue(kind) {
    if (this.muted) {
      counters.muted += 1;
      return false;
    }
    tone(kind);
    return true;
  }

  /** A toggle button for the top bar, kept in step with the setting. */
  button() {
    const b = document.createElement("button");
    b.type = "button";
    b.id = "mute";
    b.className = "mute";
    const draw = () => {
      b.setAttribute("aria-pressed", String(this.muted));
      b.textContent = this.muted ? "Sound: off" : "Sound: on";
      b.title = this.muted
        ? "New I-grade incidents and alarms are silent (an officer's emergency still sounds). Click to turn sound on."
        : "Sound for new I-grade incidents and alarms. Click to mute.";
    };
    b.addEventListener("click", () => {
      this.set(!this.muted);
      draw();
    });
    draw();
    return b;
  }
}
