-- Cancelled rows become interrupted, which the older constraint allows.
UPDATE commands SET status = 'interrupted' WHERE status = 'cancelled';
