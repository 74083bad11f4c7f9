"""The dashboard's side of the library: everything the Streamlit pages use besides the core.

- :mod:`ser_lib.app.ui`: the Streamlit kit (the only module here importing Streamlit): cached scans,
  models and predictions, the shared sidebar, ``guard()``.
- :mod:`ser_lib.app.dataset_view`, :mod:`ser_lib.app.model_view`, :mod:`ser_lib.app.call_view`:
  what the pages show, as plain data (no Streamlit).
- :mod:`ser_lib.app.jobs`: training and evaluation in a background worker process.
- :mod:`ser_lib.app.plots`, :mod:`ser_lib.app.plots_timeline`: plotly figure builders.

The core and :mod:`ser_lib.calls` never import this package.
"""
