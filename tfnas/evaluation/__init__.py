"""The evaluator seam: ``evaluate(archs) -> results`` on batches (``base``), proxy scoring
(``proxy``) and cached short training (``training``). Executors plug in here."""
