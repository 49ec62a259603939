"""The browser side of WebRTC, served as static files with no build step: the signalling
client (``webrtc-client.js``, an ES module) and the softphone page built on it."""
