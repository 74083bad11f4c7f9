"""Emotion over whole calls, offline from disk or live as the audio arrives.

- :mod:`ser_lib.calls.vad`: voice-activity detection (Silero), streaming.
- :mod:`ser_lib.calls.timeline`: the streaming engine, smoothing, segments, summary, offline entry points.

This package imports neither Streamlit nor plotly, and never the training code: a call analysis
needs a trained bundle (run with ONNX Runtime) and nothing else.
"""
