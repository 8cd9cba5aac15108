"""Codec evaluation: objective metrics of a codec beside Opus, Codec2 and EnCodec on the same clips.

``codeclm eval codec`` drives :func:`codec.evaluation.run.evaluate_codec` and writes its table,
JSON and HTML report (:mod:`codec.evaluation.report`). The optional metric packages (the ``eval``
extra) are imported only when a run needs them.
"""
