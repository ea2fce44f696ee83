-- Where a booking's payment decision is: the customer's wallet stream ('wallet/<customer id>')
-- since payments are decided by the wallet; NULL on rows written before this column existed,
-- whose decision is in 'payment/<hold_id>' (the saga supervisor re-sends it from there).
ALTER TABLE bookings ADD COLUMN payment_stream text;
