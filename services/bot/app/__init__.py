"""What every feature uses: the composition root and the plumbing under the features.

`bootstrap.py` (runtime → bot, sender, dispatcher, consumers), `features.py` (the routers in
dispatch order) and `generation_wiring.py` are the composition root, the only modules allowed
to import any feature's modules; the rest — config and pricing, the outgoing `sender` with
flood control (`retry`), FSM storage on NATS KV, `FeatureRouter` routing and filters, the user
middleware, texts and locales, read models, metrics and telemetry, the main menu, screen
helpers — imports no feature beyond a feature's `PUBLIC` modules.
"""
