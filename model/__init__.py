"""The allscreen ALL reference model: its ``.eim`` server, training, evaluation and card.

This package stands alone on purpose: the launcher ``allscreen-all.eim`` and the server
modules it runs (``eim_*.py``, ``pin.py``) must work where only ``model/`` is installed (a
device image, a copy beside its weights), so they import nothing from ``allscreen``,
``worker`` or ``producer`` and keep their own small copies of a few core helpers (process
death with the parent in ``eim_server``, a ``ModelInfo`` in ``eim_protocol``, a sha256 in
``pin``). Training (``train``, ``cv``, ``calibrate``) needs the ``train`` extra (torch, onnx).
See ``MODEL_CARD.md`` for the shipped model and ``MODEL_HISTORY.md`` for how it was chosen.
"""
