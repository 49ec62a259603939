"""WebRTC legs: browsers (and the aiortc test peer) as endpoints of type WEBRTC."""
