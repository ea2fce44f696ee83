-- The sales counters are kept by the bookings projection, in the transaction of its rows
-- (engine/sales.py): a booking's row says everything its sales figures need, so the sales
-- consumer's row per hold (sales_holds, one per hold forever) and its checkpoint go, and the
-- counters are counted once more from the bookings as they stand, which is where the projection
-- goes on from. Each booking contributes what engine/sales.py `EntitySales.add` says and
-- engine/adapters/pg_sales.py `_CONTRIBUTION` says in SQL; a test runs this file again over
-- rows the projection wrote and finds the same counters (tests/integration/test_pg_sales.py).
-- Safe to run twice.
DROP TABLE IF EXISTS sales_holds;
DELETE FROM log_checkpoints WHERE name = 'sales-metrics';
TRUNCATE sales;
INSERT INTO sales (entity, held_bookings, held_units, confirmed_bookings, sold_units, revenue,
                   cancelled_bookings, cancelled_units, cancelled_amount, released_units, expired,
                   payment_failed, payment_policy, by_customer, by_admin, other)
SELECT booking_stream,
       count(*),
       sum(quantity),
       count(*) FILTER (WHERE confirmed_at IS NOT NULL),
       coalesce(sum(quantity) FILTER (WHERE confirmed_at IS NOT NULL), 0),
       coalesce(sum(amount) FILTER (WHERE confirmed_at IS NOT NULL), 0),
       count(*) FILTER (WHERE cancelled_at IS NOT NULL),
       coalesce(sum(quantity) FILTER (WHERE cancelled_at IS NOT NULL), 0),
       coalesce(sum(amount) FILTER (WHERE cancelled_at IS NOT NULL), 0),
       coalesce(sum(quantity) FILTER (WHERE released_at IS NOT NULL OR expired_at IS NOT NULL), 0),
       count(*) FILTER (WHERE expired_at IS NOT NULL),
       count(*) FILTER (WHERE category = 'payment-failed'),
       count(*) FILTER (WHERE category = 'payment-policy'),
       count(*) FILTER (WHERE category = 'customer'),
       count(*) FILTER (WHERE category = 'admin'),
       count(*) FILTER (WHERE category = 'other')
  FROM (SELECT b.*,
               CASE WHEN released_at IS NULL THEN NULL
                    WHEN reason LIKE 'payment failed: policy%' THEN 'payment-policy'
                    WHEN reason LIKE 'payment failed%' THEN 'payment-failed'
                    WHEN reason = 'released by customer' THEN 'customer'
                    WHEN reason = 'released by admin' THEN 'admin'
                    ELSE 'other' END AS category
          FROM bookings b) AS b
 GROUP BY booking_stream;
