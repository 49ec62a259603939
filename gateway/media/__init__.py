"""The media plane: 20 ms PCM frames, codecs, RTP, jitter buffers, mixing.

Heavy work runs once per 20 ms tick over all legs at a time (numpy over 2-D arrays), never
per packet; the per-packet path only parses the 12-byte RTP header and queues the payload.
"""
