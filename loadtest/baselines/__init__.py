"""Lock-based baselines: NOT part of rezerv. What a flash sale is measured against.

A small FastAPI app (`loadtest.baselines.app:create_app`) with rezerv's route shape, JWT check and
Idempotency-Key handling, doing per booking what rezerv's saga does (reserve the tickets, charge
the customer's wallet if the balance allows, record the booking) in one PostgreSQL transaction,
with one of three concurrency controls (loadtest/baselines/strategies.py). Nothing in rezerv's
runtime imports this package; it imports rezerv's pure pieces (token check, hold-id derivation,
request schemas) so that both sides check and derive exactly alike.
"""
