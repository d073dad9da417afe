"""The evaluator seam: ``evaluate(archs) -> results`` on batches (``base``), proxy scoring
(``proxy``), cached short training (``training``) and cached measured LiteRT latency
(``latency``). Executors plug in here."""
