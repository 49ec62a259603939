/**
 * The gateway's WebRTC signalling (docs/webrtc-signalling.md) for browsers: one WebSocket,
 * at most one call at a time, non-trickle SDP. No dependencies, no build step.
 *
 *   import { WebRtcClient } from "/webrtc/static/webrtc-client.js";
 *   const client = new WebRtcClient();
 *   client.addEventListener("incoming", (e) => client.answer());
 *   client.addEventListener("state", (e) => console.log(e.detail.state, e.detail.cause));
 *   await client.connect("ws://host/webrtc/1/signalling", token);  // resolves on "registered"
 *   await client.call("support");
 *
 * Events (CustomEvent, fields in `detail`):
 *   registered {identity, displayName, expirationTime}
 *   incoming   {callId, from, fromDisplayName}           a call to us is ringing (while
 *                                                        in a call, calls are left ringing)
 *   state      {state, callId, cause?}  state: incoming, calling, ringing, early-media,
 *                                       answered, hangup (cause: the gateway's or "LOCAL")
 *   remotestream {stream}                                the other side's audio arrived
 *   error      {reason, callId?, ref?}                   the gateway refused something
 *   closed     {code, reason}                            the socket went (4401: bad token)
 */

const GATHERING_TIMEOUT_MS = 5000; // send what was gathered if ICE never says "complete"

export const DEFAULT_AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export class WebRtcClient extends EventTarget {
  /**
   * @param {object} [options]
   * @param {MediaTrackConstraints|boolean} [options.audio] getUserMedia's audio constraints
   * @param {RTCIceServer[]} [options.iceServers] STUN/TURN for the browser's own candidates
   */
  constructor({ audio = DEFAULT_AUDIO, iceServers = [] } = {}) {
    super();
    this.audio = audio;
    this.iceServers = iceServers;
    this.identity = null;
    this.displayName = null;
    /** The current call's id, its state, and the other side's audio. */
    this.callId = null;
    this.state = "idle";
    this.remoteStream = null;
    this.muted = false;
    this._ws = null;
    this._pc = null;
    this._local = null;
    this._offer = null; // the incoming call's offer until answer() or reject()
    this._ref = 0;
    this._ended = 0; // how many calls _end() ended: a step awaited across one is stale
  }

  /** Open the socket; resolves with the `registered` message, rejects if it closes first. */
  connect(url, token) {
    this.close();
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    this._ws = ws;
    return new Promise((resolve, reject) => {
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "registered") {
          this.identity = message.identity;
          this.displayName = message.displayName;
          resolve(message);
        }
        this._onMessage(message);
      };
      ws.onclose = (event) => {
        reject(new Error(event.reason || `socket closed (${event.code})`));
        if (this._ws === ws) {
          this._ws = null;
          this._end("SOCKET_CLOSED");
        } else if (this._ws !== null) {
          return; // an earlier socket, replaced by connect(): nothing of ours closed
        }
        this._emit("closed", { code: event.code, reason: event.reason });
      };
    });
  }

  get connected() {
    return this._ws !== null && this._ws.readyState === WebSocket.OPEN;
  }

  /** Call `to` (what was dialled: the app sees it as CALL_RECEIVED's `to`); resolves with the callId. */
  async call(to) {
    this._idleOrThrow();
    this._setState("calling", null);
    const ref = `c${++this._ref}`;
    const ended = this._ended;
    try {
      const pc = await this._newPeerConnection();
      pc.addTransceiver(this._local.getAudioTracks()[0], { direction: "sendrecv", streams: [this._local] });
      await pc.setLocalDescription(await pc.createOffer());
      const sdp = await this._gathered(pc);
      if (this._pc !== pc) throw new Error("hung up");
      const calling = this._waitFor((m) => m.type === "calling" && m.ref === ref, ref);
      this._send({ type: "call", ref, to, sdp });
      const { callId } = await calling;
      if (this._pc !== pc) {
        this._send({ type: "hangup", callId }); // hung up before the gateway took it
        throw new Error("hung up");
      }
      this.callId = callId;
      this._setState("calling", callId);
      return this.callId;
    } catch (error) {
      if (this._ended === ended) this._end("LOCAL"); // else it ended already (a new call may be on)
      throw error;
    }
  }

  /** Answer the ringing incoming call with the microphone. */
  async answer() {
    if (this.state !== "incoming") throw new Error("no incoming call");
    const callId = this.callId;
    const pc = await this._newPeerConnection();
    await pc.setRemoteDescription({ type: "offer", sdp: this._offer });
    this._offer = null;
    for (const track of this._local.getAudioTracks()) pc.addTrack(track, this._local);
    await pc.setLocalDescription(await pc.createAnswer());
    const sdp = await this._gathered(pc);
    if (this._pc !== pc || this.callId !== callId) return; // hung up meanwhile
    this._send({ type: "answer", callId, sdp });
    this._setState("answered", callId);
  }

  /** Decline the ringing incoming call ("BUSY" fails it BUSY, else REJECTED). */
  reject(reason) {
    if (this.state !== "incoming") return;
    this._send({ type: "reject", callId: this.callId, ...(reason ? { reason } : {}) });
    this._end("LOCAL");
  }

  /** End the call in any state (a ringing incoming call: as a reject). */
  hangup() {
    if (this.callId) this._send({ type: "hangup", callId: this.callId });
    this._end("LOCAL");
  }

  /**
   * Key presses: each of 0-9 * # A-D reaches the app as a DTMF_CAPTURED. Sent as RFC 4733
   * events in the call's audio (RTCRtpSender.dtmf) when it negotiated telephone-event, else as
   * a `dtmf` message. Returns how: "rtp" or "signalling".
   */
  sendDtmf(digits) {
    if (!this.callId) throw new Error("no call");
    const keys = String(digits);
    const dtmf = this._dtmfSender();
    if (dtmf) {
      dtmf.insertDTMF(dtmf.toneBuffer + keys); // appended: insertDTMF replaces what is queued
      return "rtp";
    }
    this._send({ type: "dtmf", callId: this.callId, digits: keys });
    return "signalling";
  }

  /** Mute the microphone: the gateway hears silence (told, and the track sends nothing). */
  mute(muted = true) {
    this.muted = Boolean(muted);
    if (this._local) for (const track of this._local.getAudioTracks()) track.enabled = !this.muted;
    if (this.callId) this._send({ type: "mute", callId: this.callId, muted: this.muted });
  }

  /** Close the socket (its calls end at the gateway) and release the microphone. */
  close() {
    this._end("LOCAL");
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.close(1000);
    }
  }

  // -- internals ------------------------------------------------------------------------

  _onMessage(message) {
    const forUs = message.callId && message.callId === this.callId;
    switch (message.type) {
      case "incoming":
        if (this.state !== "idle") return; // busy here: another tab of ours may take it
        this.callId = message.callId;
        this._offer = message.sdp;
        this.state = "incoming";
        this._emit("incoming", { callId: message.callId, from: message.from, fromDisplayName: message.fromDisplayName });
        this._setState("incoming", message.callId);
        break;
      case "ringing":
        if (forUs) this._setState("ringing", this.callId);
        break;
      case "early-media":
      case "answered":
        if (!forUs) return;
        if (message.sdp && this._pc && this._pc.signalingState === "have-local-offer") {
          this._pc.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((error) =>
            this._emit("error", { callId: this.callId, reason: `unusable answer: ${error}` }));
        }
        this._setState(message.type, this.callId);
        break;
      case "hangup":
        if (forUs) this._end(message.cause || "NORMAL_HANGUP");
        break;
      case "error":
        this._emit("error", { callId: message.callId, ref: message.ref, reason: message.reason });
        break;
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  _waitFor(match, ref) {
    return new Promise((resolve, reject) => {
      const onMessage = (event) => {
        const message = event.detail;
        if (match(message)) {
          done();
          resolve(message);
        } else if (message.type === "error" && message.ref === ref) {
          done();
          reject(new Error(message.reason));
        }
      };
      const onClosed = () => {
        done();
        reject(new Error("socket closed"));
      };
      const done = () => {
        this.removeEventListener("message", onMessage);
        this.removeEventListener("closed", onClosed);
      };
      this.addEventListener("message", onMessage);
      this.addEventListener("closed", onClosed);
    });
  }

  async _newPeerConnection() {
    if (!this._local) {
      const ended = this._ended;
      const local = await navigator.mediaDevices.getUserMedia({ audio: this.audio, video: false });
      if (this._ended !== ended) { // hung up while the microphone opened (a permission prompt)
        for (const track of local.getTracks()) track.stop();
        throw new Error("hung up");
      }
      this._local = local;
      for (const track of local.getAudioTracks()) track.enabled = !this.muted;
    }
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this._pc = pc;
    pc.ontrack = (event) => {
      this.remoteStream = event.streams[0] || new MediaStream([event.track]);
      this._emit("remotestream", { stream: this.remoteStream });
    };
    pc.onconnectionstatechange = () => {
      if (this._pc === pc && pc.connectionState === "failed") this.hangup();
    };
    return pc;
  }

  /** The audio sender's RTCDTMFSender when it can send RFC 4733 events now, else null. */
  _dtmfSender() {
    const sender = this._pc && this._pc.getSenders().find((s) => s.track && s.track.kind === "audio");
    return sender && sender.dtmf && sender.dtmf.canInsertDTMF ? sender.dtmf : null;
  }

  /** The local SDP with every candidate: the protocol does not need trickled ones. */
  _gathered(pc) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve(pc.localDescription.sdp);
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") done();
      };
      const timer = setTimeout(done, GATHERING_TIMEOUT_MS);
      pc.addEventListener("icegatheringstatechange", check);
      check();
    });
  }

  _idleOrThrow() {
    if (!this.connected) throw new Error("not connected");
    if (this.state !== "idle") throw new Error(`busy (${this.state})`);
  }

  _end(cause) {
    this._ended++;
    const callId = this.callId;
    const active = this.state !== "idle";
    if (this._pc) this._pc.close();
    if (this._local) for (const track of this._local.getTracks()) track.stop();
    this._pc = this._local = this._offer = this.remoteStream = null;
    this.callId = null;
    this.muted = false;
    if (active) {
      this._setState("hangup", callId, cause);
      this.state = "idle";
    }
  }

  _setState(state, callId, cause) {
    this.state = state;
    this._emit("state", { state, callId, ...(cause ? { cause } : {}) });
  }

  _send(message) {
    if (this.connected) this._ws.send(JSON.stringify(message));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
