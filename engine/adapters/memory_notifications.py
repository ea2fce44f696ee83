"""Notifications in memory, for unit tests; passes tests/contract/notifications.py like PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from engine.notifications import Delivery, Notification, Stored, Webhook


@dataclass
class InMemoryNotifications:
    rows: list[Stored] = field(default_factory=list)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    deliveries: dict[int, tuple[int, str, int, int, str]] = field(
        default_factory=dict
    )  # id -> (nid, cust, tries, at, err)
    parked: list[tuple[str, int, int, str]] = field(default_factory=list)  # (customer, notification id, tries, error)
    _next_delivery: int = 1

    async def store(self, notifications: Sequence[Notification], now_ms: int) -> int:
        known = {s.notification.message_id for s in self.rows}
        count = 0
        for n in notifications:
            if n.message_id in known:
                continue
            known.add(n.message_id)
            stored = Stored(len(self.rows) + 1, n)
            self.rows.append(stored)
            count += 1
            if n.customer_id in self.webhooks:
                self.deliveries[self._next_delivery] = (stored.id, n.customer_id, 0, now_ms, "")
                self._next_delivery += 1
        return count

    async def page(self, customer_id: str, before_id: int, limit: int, unread_only: bool) -> list[Stored]:
        mine = [
            s
            for s in reversed(self.rows)
            if s.notification.customer_id == customer_id and s.id < before_id and not (unread_only and s.read_at)
        ]
        return mine[:limit]

    async def mark_read(self, customer_id: str, ids: Sequence[int] | None, now_ms: int) -> int:
        changed = 0
        for i, s in enumerate(self.rows):
            wanted = ids is None or s.id in ids
            if s.notification.customer_id == customer_id and wanted and s.read_at is None:
                self.rows[i] = replace(s, read_at=now_ms)
                changed += 1
        return changed

    async def after(self, customer_ids: Sequence[str], after_id: int, limit: int) -> list[Stored]:
        return [s for s in self.rows if s.id > after_id and s.notification.customer_id in customer_ids][:limit]

    async def last_id(self) -> int:
        return len(self.rows)

    async def set_webhook(self, webhook: Webhook) -> None:
        self.webhooks[webhook.customer_id] = webhook

    async def webhook(self, customer_id: str) -> Webhook | None:
        return self.webhooks.get(customer_id)

    async def delete_webhook(self, customer_id: str) -> bool:
        self.deliveries = {k: v for k, v in self.deliveries.items() if v[1] != customer_id}
        return self.webhooks.pop(customer_id, None) is not None

    async def due(self, now_ms: int, limit: int) -> list[Delivery]:
        ready = sorted((v[3], v[0], k) for k, v in self.deliveries.items() if v[3] <= now_ms)[:limit]
        out = []
        for _, _, k in ready:
            nid, customer, tries, _at, _err = self.deliveries[k]
            hook = self.webhooks[customer]
            out.append(Delivery(k, self.rows[nid - 1], hook.url, hook.secret, tries))
        return out

    async def delivered(self, delivery_ids: Sequence[int]) -> None:
        for k in delivery_ids:
            self.deliveries.pop(k, None)

    async def retry_later(self, delivery_id: int, attempts: int, at_ms: int, error: str) -> None:
        nid, customer, _, _, _ = self.deliveries[delivery_id]
        self.deliveries[delivery_id] = (nid, customer, attempts, at_ms, error)

    async def dead_letter(self, delivery_id: int, attempts: int, error: str, now_ms: int) -> None:
        nid, customer, _, _, _ = self.deliveries.pop(delivery_id)
        self.parked.append((customer, nid, attempts, error))

    async def dead_letters(self, customer_id: str) -> list[tuple[int, int, str]]:
        return sorted((nid, tries, err) for c, nid, tries, err in self.parked if c == customer_id)
