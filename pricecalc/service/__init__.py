"""The decision service: the SPEC §8 contract over HTTP for checkout code in any language.

``pricecalc --audit STORE serve --tokens FILE`` (SPEC §11, docs/service.md) answers with
the same calculator, rules, policy and plugins as the command line; every decision is
durable before its response is sent. The package is split by job:
:mod:`~pricecalc.service.app` (the Starlette application: routes, probes, metrics,
each answer counted and logged), :mod:`~pricecalc.service.decisions` (the decision and
void endpoints), :mod:`~pricecalc.service.deciding` (deciding for a token: keys in flight,
merchant limits, a group of requests decided), :mod:`~pricecalc.service.groups`
(requests handed from the event loop to the decide threads in groups),
:mod:`~pricecalc.service.batches` (``/v1/batches``,
streamed), :mod:`~pricecalc.service.proofs` (the SPEC §9 endpoints),
:mod:`~pricecalc.service.reading` (a request's token, key header, body and JSON),
:mod:`~pricecalc.service.responses` (JSON and problem responses, the decision body),
:mod:`~pricecalc.service.runtime` (the settings and the calculators, tokens and limits
behind the routes),
:mod:`~pricecalc.service.problems` (RFC 9457 problem documents),
:mod:`~pricecalc.service.tokens` (the tokens file and its rights),
:mod:`~pricecalc.service.keys` (the Idempotency-Key header and in-flight keys),
:mod:`~pricecalc.service.openapi` (the OpenAPI 3.1 document, from the rules' own
declarations), :mod:`~pricecalc.service.metrics` (Prometheus),
:mod:`~pricecalc.service.accesslog` (JSON Lines), :mod:`~pricecalc.service.server`
(uvicorn, signals, workers, the collector's tuning) and
:mod:`~pricecalc.service.protocols` (uvicorn's HTTP/1.1 protocols, answering a malformed
request with a problem document).
"""
