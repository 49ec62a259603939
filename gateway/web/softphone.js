// The softphone page (softphone.html) on top of webrtc-client.js: sign-in, dial pad, one call,
// and a remote audio analyser that shows a level meter and that tests read (window.softphone).

import { WebRtcClient } from "/webrtc/static/webrtc-client.js";

const $ = (id) => document.getElementById(id);
const SIGNALLING = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/webrtc/1/signalling`;
const LABELS = {
  idle: "Ready", incoming: "Incoming call", calling: "Calling…", ringing: "Ringing…",
  "early-media": "Early media", answered: "In call", hangup: "Call ended",
};

// The microphone as is: a softphone's own processing would colour what tests measure too.
const client = new WebRtcClient({
  audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
});
let audioContext = null;
let analyser = null;
let remoteSource = null;

// -- sign-in ----------------------------------------------------------------------------------

async function tokenFromApiKey(identity, displayName, applicationId, apiKey) {
  const body = { identity };
  if (displayName) body.displayName = displayName;
  if (applicationId) body.applicationId = applicationId;
  const response = await fetch("/webrtc/1/token", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `App ${apiKey}` },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const text = answer?.requestError?.serviceException?.text;
    throw new Error(text || `token refused (${response.status})`);
  }
  return answer.token;
}

async function signIn(token) {
  $("signin-error").textContent = "";
  audioContext ??= new AudioContext(); // made in the click that signs in: allowed to play
  const registered = await client.connect(SIGNALLING, token);
  $("presence").textContent = registered.displayName
    ? `${registered.displayName} (${registered.identity})` : registered.identity;
  $("presence").className = "presence online";
  $("signin").hidden = true;
  $("phone").hidden = false;
  render();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const apiKey = $("api-key").value.trim();
  try {
    let token = $("token").value.trim();
    if (!token && apiKey) {
      token = await tokenFromApiKey($("identity").value.trim(), $("display-name").value.trim(),
        $("application").value.trim(), apiKey);
    }
    if (!token) throw new Error("a token, or an identity and the API key, please");
    $("api-key").value = ""; // used once; nothing keeps it
    await signIn(token);
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
});

$("sign-out").addEventListener("click", () => {
  client.close();
  $("phone").hidden = true;
  $("signin").hidden = false;
  $("token").value = "";
  $("presence").textContent = "signed out";
  $("presence").className = "presence offline";
});

client.addEventListener("closed", (event) => {
  if (!$("phone").hidden) $("sign-out").click();
  if (event.detail.code === 4401) $("signin-error").textContent = "invalid or expired token";
  else if (event.detail.code !== 1000) $("signin-error").textContent = `disconnected (${event.detail.code})`;
});

// -- the call ---------------------------------------------------------------------------------

let peerLabel = "";
let lastEnd = "";

function render() {
  const state = client.state;
  const ringing = state === "incoming";
  const inCall = ["calling", "ringing", "early-media", "answered"].includes(state);
  $("state").textContent = state === "idle" && lastEnd ? lastEnd : LABELS[state];
  $("peer").textContent = state === "idle" ? "" : peerLabel;
  $("status").className = `status ${ringing ? "ringing" : ""} ${state === "answered" ? "live" : ""}`;
  $("call").hidden = state !== "idle";
  $("answer").hidden = $("reject").hidden = !ringing;
  $("hangup").hidden = !inCall;
  $("mute").hidden = !inCall;
  $("mute").setAttribute("aria-pressed", String(client.muted));
  $("mute").textContent = client.muted ? "Unmute" : "Mute";
}

client.addEventListener("incoming", (event) => {
  const { from, fromDisplayName } = event.detail;
  peerLabel = fromDisplayName && fromDisplayName !== from ? `${fromDisplayName} · ${from}` : (fromDisplayName || from || "");
});

client.addEventListener("state", (event) => {
  const { state, cause } = event.detail;
  if (state === "hangup") lastEnd = cause && cause !== "LOCAL" ? `Call ended (${cause})` : "Call ended";
  else lastEnd = "";
  render();
});

client.addEventListener("error", (event) => {
  $("peer").textContent = event.detail.reason;
});

client.addEventListener("remotestream", (event) => {
  const stream = event.detail.stream;
  // Played by the element (WebAudio alone is not fed a remote track), analysed beside it.
  $("remote").srcObject = stream;
  $("remote").play().catch(() => {});
  audioContext ??= new AudioContext();
  audioContext.resume();
  remoteSource?.disconnect(); // the last call's: one source and analyser at a time
  analyser = audioContext.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0.2;
  remoteSource = audioContext.createMediaStreamSource(stream);
  remoteSource.connect(analyser);
});

$("call").addEventListener("click", async () => {
  const to = $("number").value.trim();
  if (!to) return;
  peerLabel = to;
  audioContext?.resume();
  try {
    await client.call(to);
  } catch (error) {
    $("peer").textContent = error.message;
  }
});
$("answer").addEventListener("click", () => {
  audioContext?.resume(); // a click: the page may play now
  client.answer().catch((error) => ($("peer").textContent = error.message));
});
$("reject").addEventListener("click", () => client.reject());
$("hangup").addEventListener("click", () => client.hangup());
$("mute").addEventListener("click", () => {
  client.mute(!client.muted);
  render();
});

// Keys dial while idle and are DTMF during a call (once it has media).
$("keypad").addEventListener("click", (event) => {
  const key = event.target.closest("button")?.dataset.key;
  if (!key) return;
  if (["answered", "early-media"].includes(client.state)) client.sendDtmf(key);
  else if (client.state === "idle") $("number").value += key;
});

// The keyboard: Enter in the number field calls; keys elsewhere press the dial pad's.
$("number").addEventListener("keydown", (event) => {
  if (event.key === "Enter") $("call").click();
});
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || $("phone").hidden) return;
  document.querySelector(`#keypad [data-key="${CSS.escape(event.key)}"]`)?.click();
});

// -- the remote audio analyser ------------------------------------------------------------------

function levelDb() {
  if (!analyser) return -Infinity;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
  return rms > 0 ? 20 * Math.log10(rms * Math.SQRT2) : -Infinity; // dB re a full-scale sine
}

function dominantHz() {
  if (!analyser || levelDb() < -60) return null;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let peak = 1;
  for (let i = 2; i < bins.length - 1; i++) if (bins[i] > bins[peak]) peak = i;
  const [a, b, c] = [bins[peak - 1], bins[peak], bins[peak + 1]]; // parabolic fit, in dB
  const offset = (a - c) / (2 * (a - 2 * b + c)) || 0;
  return ((peak + offset) * audioContext.sampleRate) / analyser.fftSize;
}

(function meter() {
  const db = client.state === "idle" ? -Infinity : levelDb();
  $("level").style.width = `${Math.max(0, Math.min(100, (db + 60) * (100 / 60)))}%`;
  requestAnimationFrame(meter);
})();

window.softphone = { client, state: () => client.state, dominantHz, levelDb };

// A token in the fragment (#token=...) signs in at once; the fragment is then dropped from
// the address bar, so that it is not copied along with the URL.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  history.replaceState(null, "", location.pathname + location.search);
  signIn(fragment.get("token")).catch((error) => ($("signin-error").textContent = error.message));
}
render();
